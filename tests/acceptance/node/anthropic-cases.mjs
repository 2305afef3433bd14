// The official npm `@anthropic-ai/sdk` against Sluice's /v1/messages (x-api-key, anthropic-version), on the echo model
// (which answers "Echo: " and the last user message). Environment: SLUICE_ROOT_URL (the server, without /v1), SLUICE_KEY.
import Anthropic from "@anthropic-ai/sdk";
import { env, runCases, expectError } from "./common.mjs";

const baseURL = env("SLUICE_ROOT_URL");
const client = new Anthropic({ baseURL, apiKey: env("SLUICE_KEY"), maxRetries: 0, timeout: 30_000 });

const summary = (m) => ({
  type: m.type,
  role: m.role,
  model: m.model,
  text: m.content.filter((b) => b.type === "text").map((b) => b.text).join(""),
  blockTypes: m.content.map((b) => b.type),
  stopReason: m.stop_reason,
  inputTokens: m.usage?.input_tokens ?? null,
  outputTokens: m.usage?.output_tokens ?? null,
});

await runCases({
  async plain() {
    return summary(await client.messages.create({ model: "echo", max_tokens: 100, messages: [{ role: "user", content: "Hello Claude" }] }));
  },

  async systemAndBlocks() {
    return summary(await client.messages.create({
      model: "echo",
      max_tokens: 100,
      system: "Be brief.",
      messages: [{ role: "user", content: "first" }, { role: "assistant", content: "ok" }, { role: "user", content: [{ type: "text", text: "second one" }] }],
    }));
  },

  async maxTokens() {
    return summary(await client.messages.create({ model: "echo", max_tokens: 2, messages: [{ role: "user", content: "a long enough message" }] }));
  },

  async streaming() {
    const stream = await client.messages.create({ model: "echo", max_tokens: 100, stream: true, messages: [{ role: "user", content: "stream Claude" }] });
    const types = [];
    let text = "", stopReason = null, outputTokens = null;
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === "content_block_delta" && event.delta.type === "text_delta") text += event.delta.text;
      if (event.type === "message_delta") { stopReason = event.delta.stop_reason; outputTokens = event.usage?.output_tokens ?? null; }
    }
    return { types: [...new Set(types)], first: types[0], last: types[types.length - 1], text, stopReason, outputTokens };
  },

  async streamHelper() {
    const stream = client.messages.stream({ model: "echo", max_tokens: 100, messages: [{ role: "user", content: "helper Claude" }] });
    let deltas = "";
    stream.on("text", (t) => { deltas += t; });
    const final = await stream.finalMessage();
    return { deltas, final: summary(final) };
  },

  async countTokens() {
    const counted = await client.messages.countTokens({ model: "echo", messages: [{ role: "user", content: "count these words" }] });
    return { inputTokens: counted.input_tokens };
  },

  async errors() {
    const badKey = new Anthropic({ baseURL, apiKey: "sk-sluice-" + "Q".repeat(38), maxRetries: 0 });
    return {
      unauthorized: await expectError(() => badKey.messages.create({ model: "echo", max_tokens: 10, messages: [{ role: "user", content: "x" }] })),
      missingModel: await expectError(() => client.messages.create({ model: "no-such-model", max_tokens: 10, messages: [{ role: "user", content: "x" }] })),
      unknownBlock: await expectError(() => client.messages.create({ model: "echo", max_tokens: 10, messages: [{ role: "user", content: [{ type: "hologram", data: "x" }] }] })),
      missingMaxTokens: await expectError(() => client.messages.create({ model: "echo", messages: [{ role: "user", content: "x" }] })),
    };
  },
});
