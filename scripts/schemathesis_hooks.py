"""Schemathesis hooks for scripts/schemathesis: how to generate raw mail for
`POST /inbound/email/{token}` (message/rfc822), which no built-in serializer covers.
Well-formed messages, mangled ones and arbitrary bytes."""

import schemathesis
from hypothesis import strategies as st

_header_value = st.text(max_size=80).map(lambda s: s.replace("\r", " ").replace("\n", " "))

_message = st.builds(
    lambda sender, subject, extra, body: (
        f"From: {sender}\r\nSubject: {subject}\r\n{extra}\r\n{body}".encode("utf-8", "surrogatepass")
    ),
    st.sampled_from(["ann@example.com", "Ann <ann@example.com>", "", "<>", "x@"]),
    _header_value,
    st.sampled_from(
        [
            "",
            "Auto-Submitted: auto-replied\r\n",
            "Content-Type: multipart/mixed; boundary=b\r\n",
            "Content-Transfer-Encoding: base64\r\n",
            "Message-ID: <fuzz@example.com>\r\nIn-Reply-To: <docket.tx-00@x>\r\n",
        ]
    ),
    st.text(max_size=400),
)

schemathesis.openapi.media_type("message/rfc822", st.one_of(_message, st.binary(max_size=2000)))
