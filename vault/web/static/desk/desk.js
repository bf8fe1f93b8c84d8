// The reader's time zone, for the server to show times in it (a cookie: no inline script).
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
if (zone && !document.cookie.split("; ").includes("desk_tz=" + zone)) {
  document.cookie = "desk_tz=" + zone + "; path=/; SameSite=Strict; max-age=31536000";
}

// A page answered to a form (the opened record) names its own address: put that into the
// history, so a reload shows the page again instead of posting the form a second time.
const canonical = document.body.dataset.canonical;
if (canonical && canonical.startsWith("/desk/")) {
  history.replaceState(null, "", canonical);
  const target = document.getElementById(new URL(canonical, location.href).hash.slice(1));
  if (target) target.scrollIntoView();
}

// The record page's integrity panel: the checks run on their own page, fetched right after
// this one is shown (the evidence does not wait for the stored objects to be re-read).
const panel = document.querySelector("#integrity[data-checks]");
if (panel) {
  fetch(panel.dataset.checks, { credentials: "same-origin", headers: { Accept: "text/html" } })
    .then((r) => (r.ok ? r.text() : Promise.reject(new Error(String(r.status)))))
    .then((html) => {
      const checked = new DOMParser().parseFromString(html, "text/html").getElementById("integrity");
      if (!checked) throw new Error("no panel");
      panel.replaceWith(document.importNode(checked, true));
    })
    .catch(() => {
      panel.querySelector(".checking").textContent = panel.dataset.failed;
      panel.setAttribute("aria-busy", "false");
    });
}
