// The npm `openai` SDK's Responses API (client.responses) against Sluice's /v1/responses, on the echo model (which
// answers "Echo: " and the last user message). Environment: SLUICE_BASE_URL (…/v1), SLUICE_KEY.
import OpenAI from "openai";
import { env, runCases, expectError } from "./common.mjs";

const client = new OpenAI({ baseURL: env("SLUICE_BASE_URL"), apiKey: env("SLUICE_KEY"), maxRetries: 0, timeout: 30_000 });

const summary = (r) => ({
  object: r.object,
  status: r.status,
  model: r.model,
  store: r.store,
  // output_text is the SDK's convenience on create()'s result; a stream's response.completed carries only the items.
  text: r.output_text ?? r.output.filter((o) => o.type === "message").flatMap((o) => o.content).filter((c) => c.type === "output_text").map((c) => c.text).join(""),
  outputTypes: r.output.map((o) => o.type),
  inputTokens: r.usage?.input_tokens ?? null,
  outputTokens: r.usage?.output_tokens ?? null,
});

await runCases({
  async plain() {
    return summary(await client.responses.create({ model: "echo", input: "Hello responses" }));
  },

  async instructionsAndMessages() {
    return summary(await client.responses.create({
      model: "echo",
      instructions: "Be brief.",
      input: [{ role: "user", content: "first" }, { role: "assistant", content: "ok" }, { role: "user", content: [{ type: "input_text", text: "second one" }] }],
    }));
  },

  async streaming() {
    const stream = await client.responses.create({ model: "echo", input: "stream responses", stream: true });
    const types = [];
    let text = "", completed = null;
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === "response.output_text.delta") text += event.delta;
      if (event.type === "response.completed") completed = summary(event.response);
    }
    return { types: [...new Set(types)], first: types[0], last: types[types.length - 1], text, completed };
  },

  async streamHelper() {
    const stream = client.responses.stream({ model: "echo", input: "helper responses" });
    let deltas = "";
    stream.on("response.output_text.delta", (e) => { deltas += e.delta; });
    const final = await stream.finalResponse();
    return { deltas, final: summary(final) };
  },

  async errors() {
    return {
      store: await expectError(() => client.responses.create({ model: "echo", input: "x", store: true })),
      previousResponse: await expectError(() => client.responses.create({ model: "echo", input: "x", previous_response_id: "resp_123" })),
      webSearch: await expectError(() => client.responses.create({ model: "echo", input: "x", tools: [{ type: "web_search" }] })),
      missingModel: await expectError(() => client.responses.create({ model: "no-such-model", input: "x" })),
    };
  },
});
