// The API as the dashboard uses it: the token (kept in sessionStorage, sent as a bearer header, never in a URL),
// JSON calls with ProblemDetails errors, and server-sent events read with fetch() (EventSource cannot send headers).

const TOKEN_KEY = 'corral.token';

let unauthorized = () => {};

export const auth = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set(token) { sessionStorage.setItem(TOKEN_KEY, token); },
  clear() { sessionStorage.removeItem(TOKEN_KEY); },
  /** Called when the server answers 401: the token is missing or no longer valid. */
  onUnauthorized(handler) { unauthorized = handler; },
};

/** Opening /?token=… logs in (as Jupyter does) and removes the token from the address bar and the history. */
export function takeTokenFromAddress() {
  const params = new URLSearchParams(location.search);
  const token = params.get('token');
  if (token === null) return false;
  if (token) auth.set(token);
  params.delete('token');
  const query = params.toString();
  history.replaceState(history.state, '', location.pathname + (query ? '?' + query : '') + location.hash);
  return true;
}

/** An error answer of the API, with its ProblemDetails (code, detail, errors) when it has one. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `The server answered ${status}.`);
    this.status = status;
    this.problem = problem ?? null;
    this.code = problem?.code ?? null;
  }
}

function headers(extra = {}) {
  const result = { ...extra };
  const token = auth.token;
  if (token) result.Authorization = 'Bearer ' + token;
  return result;
}

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

/** A request to the API; throws ApiError for a status outside 2xx. */
export async function call(path, { method = 'GET', body, signal, accept } = {}) {
  const init = { method, headers: headers(accept ? { Accept: accept } : {}), signal, cache: 'no-store' };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    auth.clear();
    const problem = await problemOf(response);
    unauthorized();
    throw new ApiError(401, problem);
  }
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  return response;
}

export async function json(path, options) {
  return (await call(path, options)).json();
}

/** Whether the API takes this browser's requests: true with a valid token, or when the server needs none. */
export async function signedIn() {
  const response = await fetch('/v1/stats', { headers: headers(), cache: 'no-store' });
  if (response.status === 401) {
    auth.clear();
    return false;
  }
  return true;
}

/** Saves what a response holds as a file, without putting the token in a link. */
export async function download(path, fileName) {
  const blob = await (await call(path)).blob();
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = fileName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function pause(ms, signal) {
  return new Promise(resolve => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

/**
 * Follows a server-sent event stream. Calls onEvent({id, name, data}) for each event, onState('open' | 'reconnecting'
 * | 'closed', error?) as the connection changes. Reconnects with Last-Event-ID after a drop, until endEvent arrives
 * (per-task streams end with task.end) or close() is called.
 */
export function follow(path, { onEvent, onState = () => {}, endEvent = null } = {}) {
  const control = new AbortController();
  let lastId = null;
  let finished = false;

  async function readOnce() {
    const requestHeaders = headers({ Accept: 'text/event-stream' });
    if (lastId !== null) requestHeaders['Last-Event-ID'] = lastId;
    const response = await fetch(path, { headers: requestHeaders, signal: control.signal, cache: 'no-store' });
    if (response.status === 401) {
      auth.clear();
      finished = true;
      unauthorized();
      return;
    }
    if (!response.ok) throw new ApiError(response.status, await problemOf(response));
    onState('open');
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let name = '';
    let id = null;
    let data = [];
    const dispatch = () => {
      if (id !== null) lastId = id;
      if (data.length > 0 || name) {
        const event = { id, name: name || 'message', data: data.join('\n') };
        if (event.name === endEvent) finished = true;
        onEvent(event);
      }
      name = '';
      id = null;
      data = [];
    };
    while (!finished) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      for (;;) {
        const end = buffer.search(/\r\n|\r|\n/);
        if (end < 0 || (buffer[end] === '\r' && end === buffer.length - 1)) break; // a CR may be half of a CRLF
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + (buffer.startsWith('\r\n', end) ? 2 : 1));
        if (line === '') {
          dispatch();
          if (finished) break;
          continue;
        }
        if (line.startsWith(':')) continue; // keep-alive comment
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? '' : line.slice(colon + 1);
        if (text.startsWith(' ')) text = text.slice(1);
        if (field === 'event') name = text;
        else if (field === 'data') data.push(text);
        else if (field === 'id') id = text;
      }
    }
    if (finished) await reader.cancel().catch(() => {});
  }

  (async () => {
    let delay = 500;
    while (!finished && !control.signal.aborted) {
      try {
        await readOnce();
        delay = 500;
      } catch (error) {
        if (control.signal.aborted) break;
        if (error instanceof ApiError && error.status === 404) {
          finished = true;
          onState('closed', error);
          return;
        }
      }
      if (finished || control.signal.aborted) break;
      onState('reconnecting');
      await pause(delay, control.signal);
      delay = Math.min(delay * 2, 10_000);
    }
    onState('closed');
  })();

  return { close() { control.abort(); } };
}

/** The server's agents with their availability (from /readyz, which answers 503 with the same list when none can run). */
export async function agents() {
  const response = await fetch('/readyz', { cache: 'no-store' });
  const body = await problemOf(response);
  return body?.agents ?? [];
}
