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

// --- Working together (issue 21): reply drafts -----------------------------------------
// The composer saves itself as the user's draft on the server while they type (and
// uploads chosen files into it at once), so a reload, another page or another device
// finds it. Without JS the "Save draft" button does the same with a full post.
function draftRequest(form, withFiles) {
  const data = new FormData();
  data.append("csrf_token", form.elements.namedItem("csrf_token").value);
  data.append("body", form.elements.namedItem("body").value);
  const files = form.elements.namedItem("attachments");
  if (withFiles && files) for (const file of files.files) data.append("attachments", file);
  return fetch(form.dataset.draftUrl, {
    method: "POST",
    body: data,
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
}

function draftShowFiles(form, attachments) {
  const list = form.querySelector("[data-draft-files]");
  list.replaceChildren();
  for (const att of attachments) {
    const item = document.createElement("li");
    item.append(`${att.filename} `);
    const size = document.createElement("span");
    size.className = "muted";
    size.textContent = `(${Math.max(1, Math.round(att.size / 1024))} KB)`;
    const remove = document.createElement("button");
    Object.assign(remove, { type: "submit", name: "remove_attachment", value: String(att.id) });
    remove.className = "link";
    remove.formAction = form.dataset.draftUrl;
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Remove ${att.filename}`);
    item.append(size, " ", remove);
    list.append(item);
  }
}

async function draftSave(form, withFiles) {
  const status = form.querySelector("[data-draft-status]");
  let response;
  try {
    response = await draftRequest(form, withFiles);
  } catch (err) {
    status.textContent = "Draft not saved: the connection failed.";
    return;
  }
  const result = await response.json().catch(() => ({}));
  if (!response.ok) {
    status.textContent = `Draft not saved: ${result.error || response.status}`;
    return;
  }
  status.textContent = `Draft saved ${result.saved_at}.`;
  if (withFiles) {
    form.elements.namedItem("attachments").value = ""; // now in the draft: not twice
    draftShowFiles(form, result.attachments);
  }
}

let draftTimer = null;
document.addEventListener("input", (event) => {
  const form = event.target.form;
  if (!form || !form.dataset.draftUrl || event.target.name !== "body") return;
  clearTimeout(draftTimer);
  draftTimer = setTimeout(() => draftSave(form, false), 800);
});
document.addEventListener("change", (event) => {
  const form = event.target.form;
  if (!form || !form.dataset.draftUrl || event.target.name !== "attachments") return;
  clearTimeout(draftTimer);
  draftSave(form, true);
});
document.addEventListener("submit", (event) => {
  // A save still waiting would bring back the draft the send (or discard) deletes.
  if (event.target.dataset && event.target.dataset.draftUrl) clearTimeout(draftTimer);
});

// --- Working together (issue 21): who else has the thread open ------------------------
// A heartbeat every few seconds says this user is here (and writing, when they typed in
// the reply box lately) and shows who else is; the server forgets a page silent for 30 s.
const PRESENCE_BEAT_MS = 5000;
const WRITING_MS = 30000;
let lastTyped = 0;

function presenceData(box, extra) {
  const data = new FormData();
  data.append("csrf_token", box.dataset.csrf);
  for (const [key, value] of Object.entries(extra)) data.append(key, value);
  return data;
}

function presenceShow(box, others) {
  const names = others.map((p) => (p.writing ? `${p.name} (writing a reply)` : p.name));
  box.textContent = names.length ? `Also here: ${names.join(", ")}.` : "";
}

async function presenceBeat(box) {
  const writing = Date.now() - lastTyped < WRITING_MS ? { writing: "y" } : {};
  try {
    const response = await fetch(box.dataset.presenceUrl, {
      method: "POST",
      body: presenceData(box, writing),
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    if (response.ok) presenceShow(box, (await response.json()).others);
  } catch (err) {
    // Offline for a moment: the next beat tries again.
  }
}

function presenceStart() {
  const box = document.querySelector("[data-presence]");
  if (!box) return;
  presenceBeat(box);
  setInterval(() => presenceBeat(box), PRESENCE_BEAT_MS);
  document.addEventListener("input", (event) => {
    if (event.target.name !== "body" || !event.target.form?.dataset.draftUrl) return;
    const wasWriting = Date.now() - lastTyped < WRITING_MS;
    lastTyped = Date.now();
    if (!wasWriting) presenceBeat(box); // the others learn at once that a reply is coming
  });
  window.addEventListener("pagehide", () => {
    navigator.sendBeacon(box.dataset.presenceUrl, presenceData(box, { leaving: "y" }));
  });
}
presenceStart();
