// The little the pages need beyond HTML: confirm before a destructive action, tick all rows.
document.addEventListener("submit", (event) => {
  const form = event.target.closest("[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});
document.getElementById("tick-all")?.addEventListener("change", (event) => {
  for (const box of document.querySelectorAll('input[name="id"]')) box.checked = event.target.checked;
});
