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
