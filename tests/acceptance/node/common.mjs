// Shared by the case scripts: each case runs, its observations (or its error) are collected, and one JSON object
// {caseName: observations} is printed on stdout for the C# test to assert. A case never decides pass/fail here.
// Debian bookworm's node is 18, which has no global File (the SDKs' uploads need it); node:buffer has it since 18.13.
if (typeof globalThis.File === "undefined") {
  globalThis.File = (await import("node:buffer")).File;
}

export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

export function describeError(e) {
  return {
    error: e?.constructor?.name ?? typeof e,
    status: e?.status ?? null,
    code: e?.code ?? e?.error?.code ?? null,
    type: e?.type ?? e?.error?.error?.type ?? e?.error?.type ?? null,
    param: e?.param ?? e?.error?.param ?? null,
    message: String(e?.message ?? e),
  };
}

export async function runCases(cases) {
  const results = {};
  for (const [name, run] of Object.entries(cases)) {
    try {
      results[name] = await run();
    } catch (e) {
      results[name] = { thrown: describeError(e) };
    }
  }
  process.stdout.write(JSON.stringify(results) + "\n");
}

export async function expectError(run) {
  try {
    const value = await run();
    return { error: null, unexpected: JSON.stringify(value)?.slice(0, 200) ?? null };
  } catch (e) {
    return describeError(e);
  }
}
