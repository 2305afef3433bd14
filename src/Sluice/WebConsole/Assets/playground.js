// Sluice console: the playground. Chat (streamed) and embeddings against /v1 with a short-lived key that the page
// asks for on the first send and keeps in memory only (never localStorage, sessionStorage or a cookie). The
// conversation lives in this page's memory; everything shown is set through textContent, never as HTML.
"use strict";

(() => {
  const root = document.getElementById("playground");
  if (!root) return;

  const $ = (id) => document.getElementById(id);
  const keyUrl = root.dataset.keyUrl;
  let formToken = root.dataset.token; // single-use: each key answer brings the next one
  let key = null; // { secret, renewAt }
  let minting = null;
  const conversation = []; // { role, content }
  let controller = null;

  const errorBox = $("playground-error");
  const showError = (message) => {
    errorBox.textContent = message;
    errorBox.hidden = false;
  };
  const clearError = () => {
    errorBox.textContent = "";
    errorBox.hidden = true;
  };

  // A key: the one in memory while it has more than a minute left (by this browser's clock), else a new one.
  async function playgroundKey(renew) {
    if (!renew && key && Date.now() < key.renewAt) return key.secret;
    if (!minting) {
      minting = (async () => {
        const response = await fetch(keyUrl, {
          method: "POST",
          headers: { "X-CSRF-TOKEN": formToken, "Accept": "application/json" },
          credentials: "same-origin",
        });
        if (!response.ok || !(response.headers.get("Content-Type") || "").includes("application/json")) {
          key = null;
          throw new Error(response.status === 403
            ? "Your role may not use the playground."
            : "The playground could not get a key (" + response.status + "). Reload the page and try again.");
        }
        const answer = await response.json();
        formToken = answer.token;
        key = { secret: answer.key, renewAt: Date.now() + Math.max(0, answer.expiresInSeconds - 60) * 1000 };
        return key.secret;
      })().finally(() => { minting = null; });
    }
    return minting;
  }

  // Calls /v1 with the key; when the key is refused (expired or revoked meanwhile), gets a new one and tries once more.
  async function callV1(path, body, signal) {
    for (let attempt = 0; ; attempt++) {
      const secret = await playgroundKey(attempt > 0);
      const response = await fetch(path, {
        method: "POST",
        headers: { "Authorization": "Bearer " + secret, "Content-Type": "application/json" },
        body: JSON.stringify(body),
        credentials: "omit",
        signal,
      });
      if (response.status === 401 && attempt === 0) {
        key = null;
        continue;
      }
      return response;
    }
  }

  // The message of an OpenAI-shaped error body, with the status ("402: The wallet …").
  async function errorOf(response) {
    let message = response.statusText || "the request failed";
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) message = body.error.message;
    } catch {
      // not JSON: keep the status text
    }
    return response.status + ": " + message;
  }

  // ── Chat ──
  const transcript = $("chat-transcript");
  const sendButton = $("chat-send");
  const stopButton = $("chat-stop");
  const message = $("chat-message");
  const usageLine = $("chat-usage");

  function addTurn(role, text) {
    const item = document.createElement("li");
    item.className = "turn " + role;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = role === "user" ? "You" : "Assistant";
    const content = document.createElement("div");
    content.className = "content";
    content.textContent = text;
    item.append(who, content);
    transcript.append(item);
    return content;
  }

  function numberOrNull(id) {
    const value = $(id).value.trim();
    if (value === "") return null;
    const number = Number(value);
    return Number.isFinite(number) ? number : null;
  }

  function setBusy(busy) {
    sendButton.disabled = busy;
    stopButton.disabled = !busy;
  }

  async function sendChat() {
    const text = message.value.trim();
    const model = $("chat-model").value;
    if (!text) {
      showError("Type a message first.");
      message.focus();
      return;
    }
    if (!model) {
      showError("There is no model to chat with.");
      return;
    }
    clearError();
    usageLine.textContent = "";
    conversation.push({ role: "user", content: text });
    addTurn("user", text);
    message.value = "";
    const answer = addTurn("assistant", "");
    answer.parentElement.setAttribute("aria-busy", "true");

    const messages = [];
    const system = $("chat-system").value.trim();
    if (system) messages.push({ role: "system", content: system });
    messages.push(...conversation);
    const body = { model, messages, stream: true, stream_options: { include_usage: true } };
    const temperature = numberOrNull("chat-temperature");
    if (temperature !== null) body.temperature = temperature;
    const maxTokens = numberOrNull("chat-max-tokens");
    if (maxTokens !== null) body.max_tokens = Math.trunc(maxTokens);

    controller = new AbortController();
    setBusy(true);
    let reply = "";
    try {
      const response = await callV1("/v1/chat/completions", body, controller.signal);
      if (!response.ok) {
        showError(await errorOf(response));
        answer.parentElement.remove();
        conversation.pop();
        return;
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      let done = false;
      while (!done) {
        const chunk = await reader.read();
        if (chunk.done) break;
        buffer += decoder.decode(chunk.value, { stream: true });
        let end;
        while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
          const data = event.split(/\r?\n/).filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trimStart()).join("\n");
          if (!data) continue;
          if (data === "[DONE]") { done = true; break; }
          let parsed;
          try { parsed = JSON.parse(data); } catch { continue; }
          if (parsed.error) {
            showError("The stream ended with an error: " + (parsed.error.message || "unknown"));
            continue;
          }
          const delta = parsed.choices && parsed.choices[0] && parsed.choices[0].delta;
          if (delta && typeof delta.content === "string") {
            reply += delta.content;
            answer.textContent = reply;
          }
          if (parsed.usage) {
            usageLine.textContent = "Usage: " + parsed.usage.prompt_tokens + " prompt tokens, " + parsed.usage.completion_tokens + " completion tokens.";
          }
        }
      }
    } catch (failure) {
      if (failure.name === "AbortError") {
        usageLine.textContent = "Stopped.";
      } else {
        showError(failure.message || "The request failed.");
      }
    } finally {
      answer.parentElement.removeAttribute("aria-busy");
      if (reply) conversation.push({ role: "assistant", content: reply });
      else if (answer.isConnected && !answer.textContent) answer.textContent = "(no answer)";
      controller = null;
      setBusy(false);
    }
  }

  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!controller) sendChat();
  });
  message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (!controller) sendChat();
    }
  });
  stopButton.addEventListener("click", () => { if (controller) controller.abort(); });
  $("chat-clear").addEventListener("click", () => {
    if (controller) controller.abort();
    conversation.length = 0;
    transcript.replaceChildren();
    usageLine.textContent = "";
    clearError();
  });

  // ── Embeddings ──
  $("embeddings-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("embeddings-input").value;
    const model = $("embeddings-model").value;
    if (!input.trim()) {
      showError("Type some text to embed first.");
      return;
    }
    if (!model) {
      showError("There is no embeddings model.");
      return;
    }
    clearError();
    const button = $("embeddings-send");
    button.disabled = true;
    try {
      const response = await callV1("/v1/embeddings", { model, input });
      if (!response.ok) {
        showError(await errorOf(response));
        return;
      }
      const answer = await response.json();
      const vector = answer.data[0].embedding;
      $("embeddings-dimensions").textContent = String(vector.length);
      $("embeddings-values").textContent = vector.slice(0, 8).map((v) => v.toFixed(4)).join(", ") + (vector.length > 8 ? ", …" : "");
      $("embeddings-usage").textContent = answer.usage ? answer.usage.prompt_tokens + " tokens" : "not reported";
      $("embeddings-result").hidden = false;
    } catch (failure) {
      showError(failure.message || "The request failed.");
    } finally {
      button.disabled = false;
    }
  });
})();
