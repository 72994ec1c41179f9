// Keyboard shortcuts for agents (j/k, o or Enter, r, e, a, /, ?). Progressive: every
// action is a link, a field or a form's button that also works by mouse and without
// this file. Keys are ignored while typing in a field or with a modifier held, so they
// never eat a letter of a reply or a browser shortcut.
(() => {
  const SHORTCUTS = [
    ["j", "Next thread in the list"],
    ["k", "Previous thread in the list"],
    ["o or Enter", "Open the selected thread"],
    ["r", "Reply (on a thread)"],
    ["e", "Close the thread (on a thread)"],
    ["a", "Assign the thread to me (on a thread)"],
    ["/", "Search"],
    ["?", "Show these shortcuts"],
  ];

  const typing = (target) =>
    target instanceof Element &&
    target.closest("input, textarea, select, [contenteditable=''], [contenteditable='true']") !== null;

  const threadLinks = () =>
    Array.from(document.querySelectorAll("table.inbox tbody tr")).map((row) =>
      row.querySelector("a[href*='/threads/']")
    ).filter(Boolean);

  function move(step) {
    const links = threadLinks();
    if (!links.length) return false;
    // The row chosen last stays chosen while the focus wanders (the search field, say).
    let at = links.findIndex((link) => link.closest("tr").classList.contains("kbd-current"));
    if (at === -1) at = links.indexOf(document.activeElement);
    const next = at === -1 ? (step > 0 ? 0 : links.length - 1) : Math.min(Math.max(at + step, 0), links.length - 1);
    links.forEach((link) => link.closest("tr").classList.remove("kbd-current"));
    links[next].closest("tr").classList.add("kbd-current");
    links[next].focus();
    return true;
  }

  function open() {
    const current = document.querySelector("table.inbox tr.kbd-current a[href*='/threads/']");
    if (!current) return false;
    current.click();
    return true;
  }

  function reply() {
    const body = document.querySelector("#composer textarea[name='body']");
    if (!body) return false;
    body.focus();
    return true;
  }

  function closeThread() {
    const status = document.querySelector("form[action$='/status'] select[name='status']");
    if (!status || status.value === "closed") return false;
    status.value = "closed";
    status.form.requestSubmit();
    return true;
  }

  function assignToMe() {
    const button = document.querySelector("button[name='assignee'][value='me']");
    if (!button) return false;
    button.click();
    return true;
  }

  function search() {
    const field = document.querySelector("form[role='search'] input[name='q']");
    if (!field) return false;
    field.focus();
    field.select();
    return true;
  }

  function help() {
    let dialog = document.getElementById("shortcuts");
    if (!dialog) {
      dialog = document.createElement("dialog");
      dialog.id = "shortcuts";
      dialog.setAttribute("aria-labelledby", "shortcuts-heading");
      const heading = document.createElement("h2");
      heading.id = "shortcuts-heading";
      heading.textContent = "Keyboard shortcuts";
      const table = document.createElement("table");
      for (const [key, what] of SHORTCUTS) {
        const row = table.insertRow();
        const keyCell = document.createElement("th");
        keyCell.scope = "row";
        key.split(" or ").forEach((name, i) => {
          if (i) keyCell.append(" or ");
          const kbd = document.createElement("kbd");
          kbd.textContent = name;
          keyCell.append(kbd);
        });
        row.appendChild(keyCell);
        row.insertCell().textContent = what;
      }
      const close = document.createElement("button");
      close.type = "button";
      close.textContent = "Close";
      close.addEventListener("click", () => dialog.close());
      dialog.append(heading, table, close);
      document.body.appendChild(dialog);
    }
    if (!dialog.open) dialog.showModal();
    return true;
  }

  // The hint is in the page for JavaScript to show: without it there are no shortcuts.
  document.querySelectorAll(".kbd-hint").forEach((hint) => { hint.hidden = false; });

  const ACTIONS = { j: () => move(1), k: () => move(-1), o: open, Enter: open, r: reply, e: closeThread, a: assignToMe, "/": search, "?": help };

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    if (typing(event.target) || document.querySelector("dialog[open]")) return;
    // Enter on a focused link or button acts natively; only a row chosen with j/k needs us.
    if (event.key === "Enter" && event.target instanceof Element && event.target.closest("a, button")) return;
    const action = ACTIONS[event.key];
    if (action && action()) event.preventDefault();
  });
})();
