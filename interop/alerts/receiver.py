"""A webhook receiver that takes only what verifies, as a security team's would.

    python receiver.py            (the shared secret on stdin's first line: whsec_...)

Listens on 127.0.0.1 (a free port, printed first as `listening PORT`). Each POST is checked
with the Standard Webhooks reference library (signature, id, timestamp within five minutes):
verified, it is answered 204 and printed as one JSON line {"verified": true, "type", "data"};
otherwise answered 401 and printed {"verified": false, "error"}.
"""

import http.server
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

WEBHOOK = Webhook(sys.stdin.readline().strip())


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(min(length, 1 << 20))
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            message = WEBHOOK.verify(body, headers)
        except WebhookVerificationError as error:
            self.send_response(401)
            self.end_headers()
            print(json.dumps({"verified": False, "error": str(error)}), flush=True)
            return
        self.send_response(204)
        self.end_headers()
        print(json.dumps({"verified": True, "type": message["type"], "data": message["data"]}), flush=True)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
