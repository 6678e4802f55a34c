// socket.io-client 2.1.1, the client of the socket.io 2 server Nightscout 0.12.8 runs (it comes
// with it), through medgate's tunnel: authorize in-band, wait for dataUpdate, try a dbAdd and
// an alarm ack. Prints one JSON line per observation. Driven by
// crates/node/tests/end_to_end/real_nightscout.rs.
//   node socket-client.cjs GATEWAY_URL CREDENTIAL TRANSPORT(polling|websocket) MARKER WRITES(yes|no)
// WRITES says whether the credential may write: then the dbAdd's own answer is awaited, else
// an nsping's (events are answered in order; a dropped dbAdd never is).
const io = require('socket.io-client');
const [gateway, credential, transport, marker, writes] = process.argv.slice(2);
const say = (what) => console.log(JSON.stringify(what));
const socket = io(gateway, {
  path: '/socket.io/',
  query: { token: credential },
  transports: [transport],
  reconnection: false,
  timeout: 10000,
});
const done = (code) => { socket.close(); setTimeout(() => process.exit(code), 200); };
setTimeout(() => { say({ event: 'timeout' }); done(1); }, 20000);
socket.on('connect_error', (error) => { say({ event: 'connect_error', error: String(error) }); done(1); });
socket.on('connect', () => {
  say({ event: 'connect', transport: socket.io.engine.transport.name });
  // The web UI's authorize, carrying the credential the user typed (the gateway replaces it).
  socket.emit('authorize', { client: 'web', secret: credential, history: 1 }, (authorization) => {
    say({ event: 'authorized', authorization });
  });
});
let updated = false;
socket.on('dataUpdate', (data) => {
  if (updated) return;
  updated = true;
  const sgvs = (data.sgvs || []).map((s) => s.mgdl);
  say({ event: 'dataUpdate', sgvs });
  // A write and an alarm silence in-band; the gateway drops them unless the credential holds
  // their class (an ack: never, for a credential).
  socket.emit('dbAdd', { collection: 'entries', data: { type: 'sgv', sgv: 55, device: marker, date: Date.now() } }, (stored) => {
    say({ event: 'dbAdd_answered', stored: Array.isArray(stored) ? stored.length : 0 });
    if (writes === 'yes') done(0);
  });
  socket.emit('ack', 2, 'default', 900000);
  socket.emit('nsping', { mills: Date.now() }, (pong) => {
    say({ event: 'pong', result: pong.result });
    if (writes !== 'yes') done(0);
  });
});
