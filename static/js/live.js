// The live inbox: ask the server whether anything this user may see has changed
// (If-None-Match: 304 while nothing has). The request asks the server to hold it up to
// WAIT seconds until something changes (a long poll); a server that does so says so
// (X-Live-Wait) and is asked again at once, one that answers at once is asked every
// two seconds. Errors back off. When something has changed, put in the rows
// it sends for the same filters, sort and page, and the navigation's counts. Rows that
// did not change stay the same elements (their ticked boxes, the keyboard's current
// row and the scroll stay); new and changed ones get a class and are announced. Paused
// while the tab is hidden. Without this file the inbox is the same page, reloaded by hand.
(() => {
  const root = document.getElementById("inbox-live");
  if (!root || !window.fetch) return;
  const INTERVAL = 2000;
  const WAIT = 25; // seconds the server may hold a request (it caps it itself)
  const url = root.dataset.liveUrl;
  const sep = url.includes("?") ? "&" : "?";
  let etag = `"${root.dataset.liveEtag}"`;
  let timer = null;
  let failures = 0;
  let busy = false;
  let held = false; // the server holds requests: ask again at once

  const table = root.querySelector("table.inbox");
  const tbody = table.querySelector("tbody");
  const status = document.getElementById("live-status");

  // A row's thread id: its checkbox's value, else the end of its link.
  const idOf = (tr) => {
    const box = tr.querySelector('input[name="thread_ids"]');
    if (box) return box.value;
    const link = tr.querySelector("td.subject a");
    return link ? link.getAttribute("href").split("/").pop() : "";
  };
  // What a row shows, without its checkbox (ticked or not, the row is the same) and
  // without the marks this file adds.
  const shownOf = (tr) =>
    tr.className.replace(/\bis-live-\w+\b/g, "").trim() +
    Array.from(tr.cells)
      .filter((td) => !td.classList.contains("select"))
      .map((td) => td.outerHTML)
      .join("");

  function apply(data) {
    const old = new Map(Array.from(tbody.rows, (tr) => [idOf(tr), tr]));
    const template = document.createElement("template");
    template.innerHTML = data.rows;
    let added = 0;
    let changed = 0;
    const rows = Array.from(template.content.querySelectorAll("tr"), (tr) => {
      const before = old.get(idOf(tr));
      if (before && shownOf(before) === shownOf(tr)) return before;
      if (before) {
        const was = before.querySelector('input[name="thread_ids"]');
        const box = tr.querySelector('input[name="thread_ids"]');
        if (was && box) box.checked = was.checked;
        tr.classList.add("is-live-changed");
        changed += 1;
      } else {
        tr.classList.add("is-live-new");
        added += 1;
      }
      return tr;
    });
    tbody.replaceChildren(...rows);
    table.hidden = rows.length === 0;
    const empty = root.querySelector("p.empty");
    if (empty) empty.hidden = rows.length > 0;
    // "All on this page" of the bulk form means the rows shown now.
    const bulk = document.getElementById("bulk");
    if (bulk) {
      bulk.querySelectorAll('input[name="page_ids"]').forEach((input) => input.remove());
      for (const id of data.ids) {
        const input = document.createElement("input");
        input.type = "hidden";
        input.name = "page_ids";
        input.value = id;
        bulk.append(input);
      }
    }
    for (const [name, value] of Object.entries(data.counts)) {
      const count = document.querySelector(`#nav-counts [data-count="${name}"]`);
      if (count) count.textContent = value;
    }
    const removed = Array.from(old.keys()).filter((id) => !data.ids.includes(Number(id))).length;
    const parts = [];
    if (added) parts.push(`${added} new`);
    if (changed) parts.push(`${changed} updated`);
    if (removed) parts.push(`${removed} gone`);
    const total = added + changed + removed;
    if (total) status.textContent = `Inbox: ${parts.join(", ")} ${total === 1 ? "thread" : "threads"}.`;
  }

  async function poll() {
    timer = null;
    if (document.visibilityState === "hidden") return; // visibilitychange starts it again
    busy = true;
    try {
      const response = await fetch(`${url}${sep}wait=${WAIT}`, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json", "If-None-Match": etag },
      });
      if (response.status === 200) {
        // Signed out meanwhile: the login page comes back, not JSON. Stop asking.
        if (!(response.headers.get("Content-Type") || "").includes("application/json")) {
          busy = false;
          return;
        }
        const data = await response.json();
        etag = response.headers.get("ETag") || etag;
        apply(data);
      } else if (response.status !== 304) {
        throw new Error(`live inbox: ${response.status}`);
      }
      held = response.headers.has("X-Live-Wait");
      failures = 0;
    } catch (err) {
      failures += 1; // the server is restarting or the network is gone: ask less often
    }
    busy = false;
    schedule();
  }

  function schedule() {
    const delay = failures ? INTERVAL * Math.min(2 ** failures, 15) : held ? 0 : INTERVAL;
    if (timer === null) timer = setTimeout(poll, delay);
  }

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && timer === null && !busy) poll();
  });
  schedule();
})();

// The live thread: the same conditional poll for one thread. A message stored while the
// page is open is put in, rendered by the server as the page renders it, after the last
// one, and announced; the reply box, its draft and the scroll are left alone (the reply
// still stops with "read it first" if it was written before the message came).
(() => {
  const root = document.getElementById("thread-live");
  if (!root || !window.fetch) return;
  const INTERVAL = 2000;
  const WAIT = 25;
  const base = root.dataset.liveUrl;
  let etag = `"${root.dataset.liveEtag}"`;
  let after = root.dataset.after || "0";
  let timer = null;
  let failures = 0;
  let busy = false;
  let held = false; // the server holds requests: ask again at once
  const status = document.getElementById("thread-live-status");

  function apply(data) {
    const template = document.createElement("template");
    const names = [];
    for (const message of data.messages) {
      if (document.getElementById(`m${message.id}`)) continue; // shown already
      template.innerHTML = message.html;
      const article = template.content.querySelector("article");
      if (!article) continue;
      article.classList.add("is-live-new");
      root.append(article);
      names.push(message.note ? `a note by ${message.from}` : `a message from ${message.from}`);
    }
    after = String(data.newest);
    if (names.length) {
      const empty = root.querySelector("p.empty");
      if (empty) empty.remove();
      status.textContent = `New in this thread: ${names.join(", ")}.`;
    }
  }

  async function poll() {
    timer = null;
    if (document.visibilityState === "hidden") return;
    busy = true;
    try {
      const response = await fetch(`${base}?after=${encodeURIComponent(after)}&wait=${WAIT}`, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "application/json", "If-None-Match": etag },
      });
      if (response.status === 200) {
        if (!(response.headers.get("Content-Type") || "").includes("application/json")) {
          busy = false;
          return; // signed out meanwhile
        }
        const data = await response.json();
        etag = response.headers.get("ETag") || etag;
        apply(data);
      } else if (response.status !== 304) {
        throw new Error(`live thread: ${response.status}`);
      }
      held = response.headers.has("X-Live-Wait");
      failures = 0;
    } catch (err) {
      failures += 1;
    }
    busy = false;
    schedule();
  }

  function schedule() {
    const delay = failures ? INTERVAL * Math.min(2 ** failures, 15) : held ? 0 : INTERVAL;
    if (timer === null) timer = setTimeout(poll, delay);
  }

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && timer === null && !busy) poll();
  });
  schedule();
})();
