// The reader's time zone, for the server to show times in it (a cookie: no inline script).
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
if (zone && !document.cookie.split("; ").includes("desk_tz=" + zone)) {
  document.cookie = "desk_tz=" + zone + "; path=/; SameSite=Strict; max-age=31536000";
}
