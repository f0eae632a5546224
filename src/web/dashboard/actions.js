// What htmx (dashboard pages.ts hxPost, hxGet) does not do by itself:
// - show a request the server refused (401 logged out, 403 no token or
//   another site, 413, 429, 5xx) or that could not be sent: the server's
//   sentence goes into an alert at the top of the page, where a screen
//   reader reads it out;
// - move the focus, as a new page would, when a new <main> came in: to its
//   alert, its status line or its heading, so the keyboard goes on from there.
function showProblem(text) {
  const main = document.querySelector('main');
  if (!main) return;
  let p = document.getElementById('request-error');
  if (!p) {
    p = document.createElement('p');
    p.id = 'request-error';
    p.className = 'error';
    p.setAttribute('role', 'alert');
    main.prepend(p);
  }
  p.textContent = text;
  p.scrollIntoView({ block: 'nearest' });
}

document.addEventListener('htmx:responseError', (event) => {
  const xhr = event.detail.xhr;
  const type = xhr.getResponseHeader('content-type') ?? '';
  const said = type.startsWith('text/plain') ? xhr.responseText.trim() : '';
  showProblem(`Refused (${xhr.status}): ${said || 'the server did not do it.'}`);
});

document.addEventListener('htmx:sendError', () => {
  showProblem('The server could not be reached; nothing was changed.');
});

// a new page's main came in: an old problem no longer applies
document.addEventListener('htmx:beforeSwap', (event) => {
  if (event.detail.shouldSwap) document.getElementById('request-error')?.remove();
});

document.addEventListener('htmx:afterSwap', (event) => {
  if (event.detail.target?.tagName !== 'MAIN') return;
  const first = document.querySelector('main [role=alert], main [role=status], main h1');
  if (!first) return;
  first.setAttribute('tabindex', '-1');
  first.focus({ preventScroll: true });
});
