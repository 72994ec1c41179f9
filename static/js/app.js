// Progressive enhancements only: every page works without this file.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const text = button.getAttribute("data-copy");
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch (err) {
    // Clipboard API needs a secure context; fall back to selecting the text.
    const target = document.getElementById(button.getAttribute("aria-controls"));
    if (target) window.getSelection().selectAllChildren(target);
    button.textContent = "Press Ctrl+C to copy";
  }
});

// Canned replies: insert the filled-in text at the cursor instead of reloading the
// page (which would lose what the agent already typed). Without JS the form is a GET
// that reloads the thread with the text in the composer.
document.addEventListener("submit", async (event) => {
  const form = event.target.closest("form[data-canned-insert]");
  if (!form) return;
  event.preventDefault();
  const id = form.querySelector("select[name=canned]").value;
  const url = form.dataset.renderUrl.replace("/0/render", `/${encodeURIComponent(id)}/render`);
  const response = await fetch(`${url}?thread_id=${encodeURIComponent(form.dataset.threadId)}`, {
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  if (!response.ok) {
    form.submit();
    return;
  }
  const { text, unfilled } = await response.json();
  const body = document.getElementById("body");
  const start = body.selectionStart ?? body.value.length;
  const end = body.selectionEnd ?? body.value.length;
  body.value = body.value.slice(0, start) + text + body.value.slice(end);
  body.focus();
  body.selectionStart = body.selectionEnd = start + text.length;
  flagUnfilled(unfilled || []);
});

// Placeholders the thread has no value for stay in the text (the server refuses to send
// them): list them beside the composer until the agent has replaced or deleted each.
function flagUnfilled(added) {
  const warning = document.getElementById("unfilled-placeholders");
  const body = document.getElementById("body");
  if (!warning || !body) return;
  const names = new Set([...warning.dataset.unfilled.split(" "), ...added].filter(Boolean));
  const left = [...names].filter((name) => body.value.includes(`{${name}}`));
  warning.dataset.unfilled = left.join(" ");
  const list = warning.querySelector("[data-unfilled-list]");
  list.replaceChildren();
  left.forEach((name, i) => {
    if (i) list.append(", ");
    const code = document.createElement("code");
    code.textContent = `{${name}}`;
    list.append(code);
  });
  warning.hidden = left.length === 0;
}

document.addEventListener("input", (event) => {
  if (event.target.id === "body" && event.target.closest("#composer")) flagUnfilled([]);
});

// --- Working together (issue 21): bulk selection in the inbox -------------------------
// "Select all on the page" ticks the rows too, so what is sent is what the agent sees;
// without JS the server reads the box itself and acts on every row of the page.
function bulkSelectAll(event) {
  const box = event.target;
  if (!(box instanceof HTMLInputElement) || !box.form || box.form.id !== "bulk") return;
  const all = box.form.elements.namedItem("all_on_page");
  if (box === all) {
    for (const row of document.querySelectorAll('input[name="thread_ids"][form="bulk"]')) {
      row.checked = box.checked;
    }
  } else if (box.name === "thread_ids" && !box.checked && all) {
    all.checked = false; // the server would otherwise act on the whole page
  }
}
document.addEventListener("change", bulkSelectAll);
