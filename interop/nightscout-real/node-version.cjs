// Nightscout 0.12.8 refuses to start on a Node it does not list (its engines are Node 8, 10
// and 12; lib/server/bootevent.js). It runs on this machine's Node 20 (checked by the test that
// uses it), so the test preloads this to report a version it accepts. Test use only.
Object.defineProperty(process, 'version', { value: 'v12.22.12' });
