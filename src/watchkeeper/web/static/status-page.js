// The public status page writes its times in readable UTC ("7 Dec 2026, 14:05 UTC") inside
// <time datetime>; this shows them in the reader's own zone and language instead, keeping the UTC text
// as a tooltip. Without JavaScript the UTC text stays. A file of its own: the page's CSP allows only
// scripts from this origin.
(function () {
  "use strict";
  var format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  });
  function localise() {
    document.querySelectorAll("time[datetime]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when.getTime())) return;
      el.title = el.textContent;
      el.textContent = format.format(when);
      el.dataset.localised = "1";
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", localise);
  else localise();
})();
