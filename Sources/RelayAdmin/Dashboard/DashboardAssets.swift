/// The dashboard's style sheet (inlined in every page) and its one script
/// (served from `/assets/dashboard.js` so that the Content-Security-Policy
/// can forbid inline script: escaped or not, nothing a client wrote can run).
enum DashboardAssets {
    static let scriptPath = "/assets/dashboard.js"

    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
        + "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

    static let style = """
        :root {
          color-scheme: light dark;
          --bg: #f6f7f9; --panel: #ffffff; --text: #1d232b; --muted: #5d6875; --line: #d9dee4; --accent: #1f5fbf;
          --delivered: #2e8b57; --deferred: #d08a00; --failed: #c8372d; --held: #6b55b5; --queued: #2f79c7; --neutral: #7a8591;
          --badge-text: #ffffff; --code: #eef1f4;
        }
        @media (prefers-color-scheme: dark) {
          :root {
            --bg: #14181d; --panel: #1d232a; --text: #e4e8ec; --muted: #9aa5b1; --line: #333c46; --accent: #7fb0ff;
            --delivered: #4cbb7f; --deferred: #e6a52e; --failed: #ef6a5f; --held: #9d89e6; --queued: #5aa2ef; --neutral: #8d98a5;
            --badge-text: #10151a; --code: #262e37;
          }
        }
        * { box-sizing: border-box; }
        body { margin: 0; background: var(--bg); color: var(--text); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
        a { color: var(--accent); }
        header.top { display: flex; flex-wrap: wrap; align-items: baseline; gap: 1.2rem; padding: .7rem 1.2rem; background: var(--panel); border-bottom: 1px solid var(--line); }
        header.top h1 { font-size: 1.15rem; margin: 0; }
        header.top nav { display: flex; gap: 1rem; }
        header.top .spacer { flex: 1; }
        main { max-width: 1280px; margin: 0 auto; padding: 1rem 1.2rem 2rem; }
        section.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: .9rem 1.1rem; margin-bottom: 1rem; }
        section.panel > h2 { font-size: 1rem; margin: 0 0 .7rem; display: flex; gap: .6rem; align-items: baseline; }
        section.panel > h2 small { font-weight: normal; color: var(--muted); }
        .muted { color: var(--muted); }
        .tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(110px, 1fr)); gap: .6rem; }
        .tile { display: block; text-decoration: none; color: inherit; border: 1px solid var(--line); border-left: 4px solid var(--neutral); border-radius: 6px; padding: .45rem .7rem; }
        .tile .count { display: block; font-size: 1.5rem; font-weight: 600; }
        .tile .label { color: var(--muted); }
        .tile[data-status="queued"] { border-left-color: var(--queued); }
        .tile[data-status="deferred"] { border-left-color: var(--deferred); }
        .tile[data-status="held"] { border-left-color: var(--held); }
        .tile[data-status="delivered"] { border-left-color: var(--delivered); }
        .tile[data-status="failed"], .tile[data-status="bounced"] { border-left-color: var(--failed); }
        .flow-chart { width: 100%; height: auto; max-height: 320px; display: block; }
        .flow-chart .grid { stroke: var(--line); stroke-width: 1; }
        .flow-chart .baseline { stroke: var(--muted); stroke-width: 1; }
        .flow-chart .axis { fill: var(--muted); font-size: 11px; }
        .flow-chart .empty { fill: var(--muted); font-size: 13px; }
        .flow-chart .slot { fill: transparent; }
        .flow-chart .hour:hover .slot { fill: var(--line); opacity: .45; }
        .flow-chart .bar-delivered, .swatch-delivered { fill: var(--delivered); background: var(--delivered); }
        .flow-chart .bar-deferred, .swatch-deferred { fill: var(--deferred); background: var(--deferred); }
        .flow-chart .bar-failed, .swatch-failed { fill: var(--failed); background: var(--failed); }
        .legend { list-style: none; display: flex; gap: 1.2rem; padding: 0; margin: .4rem 0 0 4%; }
        .legend li { display: flex; align-items: center; gap: .35rem; }
        .swatch { display: inline-block; width: .8rem; height: .8rem; border-radius: 2px; }
        table { width: 100%; border-collapse: collapse; }
        th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { color: var(--muted); font-weight: 600; font-size: .85rem; }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
        .scroll { overflow-x: auto; }
        code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .86rem; }
        code { background: var(--code); padding: 0 .25rem; border-radius: 3px; overflow-wrap: anywhere; }
        .reply { max-width: 28rem; overflow-wrap: anywhere; }
        td.actions { white-space: nowrap; }
        .badge { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .8rem; font-weight: 600; color: var(--badge-text); background: var(--neutral); white-space: nowrap; }
        .status-queued { background: var(--queued); }
        .status-deferred, .health-paused, .kind-deferred, .kind-retried, .kind-rerouted { background: var(--deferred); }
        .status-delivered, .health-ok, .kind-delivered, .kind-released { background: var(--delivered); }
        .status-failed, .status-bounced, .health-stopped, .kind-failed, .kind-bounced { background: var(--failed); }
        .status-held, .kind-held { background: var(--held); }
        .kind-received, .kind-attempt { background: var(--queued); }
        .warn { color: var(--deferred); font-weight: 600; }
        .bad { color: var(--failed); font-weight: 600; }
        button.action { font: inherit; font-size: .8rem; padding: .1rem .55rem; margin: 0 .15rem .15rem 0; border-radius: 4px; border: 1px solid var(--line); background: var(--bg); color: var(--text); cursor: pointer; }
        button.action:hover { border-color: var(--accent); }
        button.action[data-action="delete"] { color: var(--failed); }
        button.action:disabled { opacity: .5; cursor: progress; }
        #notice:empty { display: none; }
        #notice { margin-bottom: 1rem; padding: .6rem .9rem; border-radius: 6px; border: 1px solid var(--failed); color: var(--failed); background: var(--panel); }
        form.search { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: .5rem .8rem; align-items: end; }
        form.search label { display: flex; flex-direction: column; font-size: .8rem; color: var(--muted); gap: .15rem; }
        form.search input, form.search select { font: inherit; color: var(--text); background: var(--bg); border: 1px solid var(--line); border-radius: 4px; padding: .3rem .4rem; }
        form.search button { font: inherit; padding: .35rem .9rem; border-radius: 4px; border: 1px solid var(--accent); background: var(--accent); color: var(--badge-text); cursor: pointer; }
        .routes { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: .8rem; }
        .route { border: 1px solid var(--line); border-radius: 6px; padding: .6rem .8rem; }
        .route h3 { margin: 0 0 .4rem; font-size: .95rem; display: flex; gap: .5rem; align-items: baseline; flex-wrap: wrap; }
        dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem .9rem; margin: 0; }
        dl.facts dt { color: var(--muted); }
        dl.facts dd { margin: 0; overflow-wrap: anywhere; }
        meter { width: 6rem; height: .8rem; vertical-align: middle; }
        ol.timeline { list-style: none; padding: 0; margin: 0; border-left: 2px solid var(--line); }
        ol.timeline li { position: relative; padding: .2rem 0 .8rem 1.1rem; }
        ol.timeline li::before { content: ""; position: absolute; left: -6px; top: .55rem; width: 10px; height: 10px; border-radius: 50%; background: var(--muted); }
        ol.timeline .when { color: var(--muted); margin-right: .4rem; }
        ol.timeline .summary { display: block; margin: .15rem 0; overflow-wrap: anywhere; }
        ol.timeline dl.facts { font-size: .85rem; }
        .pager { margin-top: .7rem; display: flex; gap: 1rem; }
        footer { color: var(--muted); font-size: .8rem; text-align: center; padding: 0 0 1.5rem; }
        """

    /// Queue actions: a button with `data-action` and `data-id` calls the
    /// admin API on the same origin (Basic credentials travel along), then reloads.
    static let script = """
        "use strict";
        // Queue actions for the m365-relay dashboard: POST /api/v1/messages/{id}/retry|hold|release, DELETE /api/v1/messages/{id}.
        (function () {
          function notice(text) {
            var box = document.getElementById("notice");
            if (box) { box.textContent = text; }
          }
          async function reason(response) {
            try {
              var body = await response.json();
              if (body && typeof body.error === "string") { return body.error; }
              if (body && body.error && typeof body.error.message === "string") { return body.error.message; }
              if (body && typeof body.message === "string") { return body.message; }
              if (body && typeof body.reason === "string") { return body.reason; }
            } catch (ignored) {}
            return response.status + " " + response.statusText;
          }
          document.addEventListener("click", async function (event) {
            var button = event.target.closest("button[data-action]");
            if (!button) { return; }
            var action = button.dataset.action, id = button.dataset.id;
            if (!/^[A-Za-z0-9]+$/.test(id || "")) { return; }
            if (action === "delete" && !window.confirm("Delete message " + id + "? Its content is removed and it will not be delivered.")) { return; }
            var url = "/api/v1/messages/" + encodeURIComponent(id) + (action === "delete" ? "" : "/" + action);
            button.disabled = true;
            try {
              var response = await fetch(url, {
                method: action === "delete" ? "DELETE" : "POST",
                credentials: "same-origin",
                headers: { "Accept": "application/json", "X-Requested-By": "m365-relay-dashboard" }
              });
              if (!response.ok) {
                notice("Could not " + action + " " + id + ": " + await reason(response));
                button.disabled = false;
                return;
              }
              window.location.reload();
            } catch (error) {
              notice("Could not " + action + " " + id + ": " + error);
              button.disabled = false;
            }
          });
        })();
        """
}
