"""Receivers of notices for the tests: mail sent through SES on moto, a webhook receiver, an SMTP receiver."""

from __future__ import annotations

import email
import email.policy
import http.server
import socketserver
import threading

import requests

from hatchway_dev.endpoints import MotoServer

SENDER = "hatchway@notify.example.org"


def sent_mail(server: MotoServer) -> list[dict]:
    """What SES sent: ``{"source", "destinations", "message"}`` per mail (``message``: parsed MIME;
    ``destinations``: moto's, which repeat the To header's addresses)."""
    data = requests.get(f"{server.url}/moto-api/data.json", timeout=10)
    data.raise_for_status()
    return [{"source": m["source"], "destinations": m["destinations"],
             "message": email.message_from_string(m["raw_data"], policy=email.policy.default)}
            for m in data.json()["ses"]["RawMessage"]]


def html_of(message) -> str:
    return message.get_body(preferencelist=("html", "plain")).get_content()


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers the scripted statuses
    in turn (then 200)."""

    def __init__(self):
        self.received: list[dict] = []
        self.script: list[int] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = receiver.script.pop(0) if receiver.script else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class SmtpReceiver:
    """The few SMTP commands smtplib sends (EHLO, MAIL, RCPT, DATA, QUIT), on 127.0.0.1,
    each mail recorded as ``{"mail_from", "rcpt_to", "message"}``."""

    def __init__(self):
        self.mails: list[dict] = []
        receiver = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str):
                self.wfile.write(f"{line}\r\n".encode())

            def handle(self):
                mail = {"mail_from": None, "rcpt_to": []}
                self.reply("220 127.0.0.1 test SMTP")
                while line := self.rfile.readline():
                    command = line.decode().strip()
                    verb = command[:4].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 127.0.0.1")
                    elif verb == "MAIL":
                        mail = {"mail_from": command.split(":", 1)[1].strip(" <>"), "rcpt_to": []}
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        mail["rcpt_to"].append(command.split(":", 1)[1].strip(" <>"))
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 end with <CRLF>.<CRLF>")
                        lines = []
                        while (data := self.rfile.readline()) not in (b".\r\n", b""):
                            lines.append(data[1:] if data.startswith(b"..") else data)
                        mail["message"] = email.message_from_bytes(b"".join(lines), policy=email.policy.default)
                        receiver.mails.append(mail)
                        self.reply("250 OK queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    elif verb in ("RSET", "NOOP"):
                        self.reply("250 OK")
                    else:
                        self.reply("502 not implemented")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
