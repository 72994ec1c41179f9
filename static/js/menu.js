// Loaded in <head>, before the page is drawn: marks the page as having JavaScript, so
// narrow screens fold the navigation behind the Menu button instead of showing it
// flash and vanish. Without JavaScript the navigation simply wraps, always visible.
document.documentElement.classList.add("js");

document.addEventListener("click", (event) => {
  const toggle = event.target instanceof Element && event.target.closest(".menu-toggle");
  if (!toggle) return;
  const bar = toggle.closest(".topbar");
  const open = bar.classList.toggle("menu-open");
  toggle.setAttribute("aria-expanded", String(open));
});
