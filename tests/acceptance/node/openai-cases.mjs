// The official npm `openai` SDK against Sluice: chat, streaming, tools, structured output, embeddings, models, files,
// batches and error mapping. Environment: SLUICE_BASE_URL (…/v1), SLUICE_KEY, SLUICE_TOOL_MODEL (a model on a stand-in
// provider that answers tool calls and JSON), SLUICE_BUSY_MODEL (one whose provider answers 429), SLUICE_SLASH_MODEL.
import OpenAI, { toFile } from "openai";
import { env, runCases, expectError } from "./common.mjs";

const baseURL = env("SLUICE_BASE_URL");
const client = new OpenAI({ baseURL, apiKey: env("SLUICE_KEY"), maxRetries: 0, timeout: 30_000 });
const toolModel = env("SLUICE_TOOL_MODEL");
const weather = {
  type: "function",
  function: { name: "get_weather", description: "Weather in a city", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } },
};

await runCases({
  async chat() {
    const c = await client.chat.completions.create({ model: "echo", messages: [{ role: "user", content: "Hello SDK" }] });
    return { object: c.object, text: c.choices[0].message.content, finish: c.choices[0].finish_reason, completionTokens: c.usage.completion_tokens, promptTokens: c.usage.prompt_tokens };
  },

  async chatOptions() {
    const c = await client.chat.completions.create({ model: "echo", n: 2, stop: [" me"], max_completion_tokens: 50, messages: [{ role: "user", content: "stop me here" }] });
    return { texts: c.choices.map((x) => x.message.content), indexes: c.choices.map((x) => x.index), finishes: c.choices.map((x) => x.finish_reason) };
  },

  async streaming() {
    const stream = await client.chat.completions.create({ model: "echo", stream: true, stream_options: { include_usage: true }, messages: [{ role: "user", content: "stream me" }] });
    let text = "", finish = null, usage = null, chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      for (const choice of chunk.choices) {
        text += choice.delta?.content ?? "";
        finish = choice.finish_reason ?? finish;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    return { text, finish, chunks, completionTokens: usage?.completion_tokens ?? null };
  },

  async streamingHelper() {
    const runner = client.chat.completions.stream({ model: "echo", messages: [{ role: "user", content: "helper stream" }] });
    const final = await runner.finalChatCompletion();
    return { text: final.choices[0].message.content, finish: final.choices[0].finish_reason };
  },

  async tools() {
    const messages = [{ role: "user", content: "What is the weather in Paris?" }];
    const first = await client.chat.completions.create({ model: toolModel, messages, tools: [weather], tool_choice: "auto" });
    const call = first.choices[0].message.tool_calls?.[0];
    messages.push(first.choices[0].message, { role: "tool", tool_call_id: call.id, content: "sunny" });
    const second = await client.chat.completions.create({ model: toolModel, messages, tools: [weather] });
    return { finish: first.choices[0].finish_reason, name: call.function.name, arguments: JSON.parse(call.function.arguments), id: call.id, answer: second.choices[0].message.content };
  },

  async toolsStreaming() {
    const runner = client.chat.completions.stream({ model: toolModel, messages: [{ role: "user", content: "Weather?" }], tools: [weather] });
    const final = await runner.finalChatCompletion();
    const call = final.choices[0].message.tool_calls?.[0];
    return { finish: final.choices[0].finish_reason, name: call?.function.name ?? null, arguments: call ? JSON.parse(call.function.arguments) : null };
  },

  async structured() {
    const c = await client.chat.completions.create({
      model: toolModel,
      messages: [{ role: "user", content: "The answer?" }],
      response_format: { type: "json_schema", json_schema: { name: "answer", strict: true, schema: { type: "object", properties: { answer: { type: "string" } }, required: ["answer"], additionalProperties: false } } },
    });
    return { parsed: JSON.parse(c.choices[0].message.content) };
  },

  async embeddings() {
    const floats = await client.embeddings.create({ model: "echo", input: ["embed me", "and me"], encoding_format: "float" });
    const byDefault = await client.embeddings.create({ model: "echo", input: ["embed me", "and me"] }); // the SDK asks for base64 and decodes it
    const same = floats.data.every((d, i) => d.embedding.length === byDefault.data[i].embedding.length && d.embedding.every((v, j) => Math.abs(v - byDefault.data[i].embedding[j]) < 1e-6));
    const nonZero = byDefault.data.every((d) => d.embedding.some((v) => v !== 0));
    return { dimensions: floats.data[0].embedding.length, defaultDimensions: byDefault.data[0].embedding.length, same, nonZero, promptTokens: byDefault.usage.prompt_tokens };
  },

  async models() {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    const echo = await client.models.retrieve("echo");
    let slash;
    try {
      slash = (await client.models.retrieve(env("SLUICE_SLASH_MODEL"))).id;
    } catch (e) {
      slash = `error ${e.status ?? e.constructor?.name}`;
    }
    return { ids, echo: { id: echo.id, object: echo.object }, slash };
  },

  async files() {
    const content = '{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"echo","messages":[{"role":"user","content":"file line"}]}}\n';
    const uploaded = await client.files.create({ file: await toFile(Buffer.from(content), "input.jsonl"), purpose: "batch" });
    const listed = [];
    for await (const f of client.files.list()) listed.push(f.id);
    const retrieved = await client.files.retrieve(uploaded.id);
    const text = await (await client.files.content(uploaded.id)).text();
    const deleted = await client.files.delete(uploaded.id);
    const afterDelete = await expectError(() => client.files.retrieve(uploaded.id));
    return { object: uploaded.object, purpose: uploaded.purpose, bytes: retrieved.bytes, filename: retrieved.filename, listed: listed.includes(uploaded.id), sameContent: text === content, deleted: deleted.deleted, afterDelete: afterDelete.error };
  },

  async batches() {
    const lines = ["one", "two"].map((w) => JSON.stringify({ custom_id: w, method: "POST", url: "/v1/chat/completions", body: { model: "echo", messages: [{ role: "user", content: w }] } })).join("\n") + "\n";
    const file = await client.files.create({ file: await toFile(Buffer.from(lines), "batch.jsonl"), purpose: "batch" });
    const created = await client.batches.create({ input_file_id: file.id, endpoint: "/v1/chat/completions", completion_window: "24h" });
    let batch = created;
    const deadline = Date.now() + 30_000;
    while (!["completed", "failed", "expired", "cancelled"].includes(batch.status) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      batch = await client.batches.retrieve(created.id);
    }
    const output = batch.output_file_id ? await (await client.files.content(batch.output_file_id)).text() : "";
    const answers = output.split("\n").filter(Boolean).map((l) => JSON.parse(l)).map((l) => [l.custom_id, l.response?.body?.choices?.[0]?.message?.content]);
    return { object: created.object, status: batch.status, counts: batch.request_counts, answers: Object.fromEntries(answers) };
  },

  async errors() {
    const badKey = new OpenAI({ baseURL, apiKey: "sk-sluice-" + "Q".repeat(38), maxRetries: 0 });
    return {
      unauthorized: await expectError(() => badKey.chat.completions.create({ model: "echo", messages: [{ role: "user", content: "x" }] })),
      missingModel: await expectError(() => client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] })),
      badRequest: await expectError(() => client.chat.completions.create({ model: "echo", logprobs: true, messages: [{ role: "user", content: "x" }] })),
      badRequestStreaming: await expectError(async () => {
        const s = await client.chat.completions.create({ model: "echo", stream: true, messages: [{ role: "user", content: "x" }], n: 0 });
        for await (const _ of s) { /* drain */ }
      }),
      rateLimited: await expectError(() => client.chat.completions.create({ model: env("SLUICE_BUSY_MODEL"), messages: [{ role: "user", content: "x" }] })),
    };
  },
});
