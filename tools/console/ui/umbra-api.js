// The operator view's link to the Console: JSON requests with the user key
// (held in this closure only: never stored, never shown), and the live feed
// (GET /api/ui/stream, Server-Sent Events read with fetch so the key travels
// as a header, not in a URL). The feed reconnects by itself with the last
// id it saw, so a dropped link or a Console restart loses nothing.
/* exported UmbraApi */
const UmbraApi = (function () {
  let apiKey = null;
  const listeners = { event: [], telemetry: [], deployment: [], link: [] };
  let cursor = null; // "E.T": the last event row and telemetry row received
  let linkState = 'down';

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function request(method, path, body) {
    const headers = { 'X-API-Key': apiKey };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body)
    });
    if (!r.ok) {
      let msg = r.statusText;
      try {
        msg = (await r.json()).error || msg;
      } catch (e) {
        /* not JSON: keep the status text */
      }
      throw new ApiError(r.status, msg);
    }
    return r;
  }

  const api = {
    ApiError,
    // Try a key: resolves when it opens the view, rejects with the Console's reason.
    async login(key) {
      apiKey = key;
      try {
        await request('GET', '/api/ui/whoami');
      } catch (e) {
        apiKey = null;
        throw e;
      }
    },
    async get(path) {
      return (await request('GET', path)).json();
    },
    async post(path, body) {
      return (await request('POST', path, body)).json();
    },
    async blob(path) {
      return (await request('GET', path)).blob();
    },
    on(kind, fn) {
      listeners[kind].push(fn);
      return () => {
        listeners[kind] = listeners[kind].filter((f) => f !== fn);
      };
    },
    get link() {
      return linkState;
    },
    get cursor() {
      return cursor;
    },
    startStream
  };

  function emit(kind, data) {
    for (const fn of listeners[kind]) {
      try {
        fn(data);
      } catch (e) {
        console.error('umbra listener', kind, e);
      }
    }
  }

  function setLink(state) {
    if (state !== linkState) {
      linkState = state;
      emit('link', state);
    }
  }

  // One SSE message (its lines) -> listeners; the cursor moves with each id.
  function dispatch(block) {
    let name = 'message';
    let id = null;
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
      else if (field === 'id') id = value;
    }
    if (id !== null) cursor = id;
    if (name in listeners && data.length) emit(name, JSON.parse(data.join('\n')));
  }

  async function readOnce() {
    const headers = { 'X-API-Key': apiKey, Accept: 'text/event-stream' };
    if (cursor) headers['Last-Event-ID'] = cursor;
    const r = await fetch('/api/ui/stream', { headers, cache: 'no-store' });
    if (!r.ok) throw new ApiError(r.status, 'stream refused: ' + r.status);
    setLink('up');
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  }

  // Read the feed for ever: after an end or an error, wait and reconnect
  // from the cursor (a 401/403 stops it: the key no longer opens the view).
  async function startStream() {
    for (;;) {
      try {
        await readOnce();
      } catch (e) {
        if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
          setLink('refused');
          return;
        }
      }
      setLink('down');
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  return api;
})();
