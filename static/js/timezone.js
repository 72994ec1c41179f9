// The browser's time zone for the login form, so a first login shows times in the
// user's own zone from the start (they can change it on /account). Without
// JavaScript the field stays empty and times are shown in UTC until they choose.
document.querySelectorAll("input[name='time_zone'][type='hidden']").forEach((field) => {
  try {
    field.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (error) {
    field.value = "";
  }
});
