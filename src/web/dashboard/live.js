// The overview's live counters: each `counters` event of /live (server-sent
// events, dashboard.ts) gives element ids and their new text.
const source = new EventSource('/live');
source.addEventListener('counters', (event) => {
  for (const [id, value] of Object.entries(JSON.parse(event.data))) {
    const el = document.getElementById(id);
    if (el) el.textContent = String(value);
  }
});
