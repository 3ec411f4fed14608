"""A real SMTP server for Retain's tests, on aiosmtpd.

Accepts every message on 127.0.0.1:PORT and stores it as NNNNNN.eml in
FOLDER (written under another name, then renamed, so a reader never sees
half a message), with the envelope recipients in an X-Envelope-To first
line. Refuses any recipient at reject.test with a permanent 550. Prints
"ready" once listening and runs until its standard input closes (the test
that started it ended).
"""

import os
import sys
import threading

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, folder):
        self.folder = folder
        self.count = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address.lower().endswith("@reject.test"):
            return "550 5.1.1 <%s>: mailbox unavailable" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            n = self.count
        path = os.path.join(self.folder, "%06d.eml" % n)
        with open(path + ".part", "wb") as f:
            f.write(b"X-Envelope-To: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".part", path)
        return "250 2.0.0 accepted"


def main():
    port, folder = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Sink(folder), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
