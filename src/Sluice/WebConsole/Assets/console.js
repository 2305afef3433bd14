// Sluice console: small first-party helpers, loaded on every page. No inline scripts (the CSP forbids them).
"use strict";

// A button with data-copy="ID" copies the text of the element with that id, then says so.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(source.value ?? source.textContent.trim());
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed: select and copy by hand";
  }
  setTimeout(() => { button.textContent = label; }, 2000);
});

// A form with data-confirm="…" asks before it is sent (revoking a key, deleting a file).
document.addEventListener("submit", (event) => {
  const message = event.target.dataset?.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

// The organization switcher and other <details> menus close on Escape and on a click elsewhere.
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") document.querySelectorAll("details[open].switcher").forEach((d) => d.removeAttribute("open"));
});
document.addEventListener("click", (event) => {
  document.querySelectorAll("details[open].switcher").forEach((d) => { if (!d.contains(event.target)) d.removeAttribute("open"); });
});
