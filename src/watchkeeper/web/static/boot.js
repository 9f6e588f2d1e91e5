// Runs before first paint (loaded synchronously in <head>): apply the chosen colour theme so the
// page does not flash, and tell the server the browser's time zone when the user has set none.
(function () {
  "use strict";
  try {
    var theme = localStorage.getItem("wk-theme");
    if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  } catch (e) { /* storage disabled: follow the system theme */ }
  if (document.cookie.indexOf("wk_tz=") === -1 && window.Intl) {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone) document.cookie = "wk_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; SameSite=Lax";
  }
})();
