// Browser notifications, for a user who turned them on under /account. The browser is
// asked for permission only from the account page's button, never on its own. While
// allowed, every open tab posts now and then for the notifications due; the server
// gives each one to a single tab, so several tabs never show it twice. A click opens
// the thread. Without this file (or without permission) nothing else changes.
(() => {
  const INTERVAL = 10000;
  const claimUrl = document.querySelector('meta[name="notify-claim-url"]')?.content;
  const csrf = document.querySelector('meta[name="notify-csrf"]')?.content;
  const supported = "Notification" in window;
  let timer = null;
  let failures = 0;

  // The account page: what this browser allows, and the button that asks.
  const box = document.querySelector("[data-notify-permission]");
  function showPermission() {
    if (!box) return;
    const state = box.querySelector("[data-notify-state]");
    const ask = box.querySelector("[data-notify-ask]");
    box.hidden = false;
    if (!supported) {
      state.textContent = "This browser cannot show notifications.";
      ask.hidden = true;
    } else if (Notification.permission === "granted") {
      state.textContent = "This browser shows them.";
      ask.hidden = true;
    } else if (Notification.permission === "denied") {
      state.textContent =
        "This browser blocks them: allow notifications for this site in the browser's settings.";
      ask.hidden = true;
    } else {
      state.textContent = "This browser has not been allowed to show them yet.";
      ask.hidden = false;
    }
  }
  if (box) {
    box.querySelector("[data-notify-ask]").addEventListener("click", async () => {
      if (supported) await Notification.requestPermission();
      showPermission();
      if (claimUrl && supported && Notification.permission === "granted") schedule(0);
    });
    showPermission();
  }

  if (!claimUrl || !supported || !window.fetch) return;

  function show(item) {
    const note = new Notification(item.title, { body: item.body, tag: item.tag });
    note.addEventListener("click", () => {
      window.focus();
      window.location.assign(item.url);
      note.close();
    });
  }

  async function claim() {
    timer = null;
    if (Notification.permission !== "granted") return; // the account page's button starts it
    try {
      const body = new FormData();
      body.append("csrf_token", csrf);
      const response = await fetch(claimUrl, {
        method: "POST",
        body,
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (!(response.headers.get("Content-Type") || "").includes("application/json")) return;
      if (!response.ok) throw new Error(`notifications: ${response.status}`);
      const data = await response.json();
      data.notifications.forEach(show);
      failures = 0;
    } catch (err) {
      failures += 1;
    }
    schedule(INTERVAL * Math.min(2 ** failures, 15));
  }

  function schedule(delay) {
    if (timer === null) timer = setTimeout(claim, delay);
  }
  schedule(1000);
})();
