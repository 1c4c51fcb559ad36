"""RSV1 as websockets received it, for the peers that check that the other end
compressed its messages. websockets clears RSV1 once it has inflated a frame, so
importing this module wraps its permessage-deflate decoder to record, per connection
and in order, whether each message started with a frame carrying RSV1.
"""
import collections
import zlib

from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Opcode


def received(ws):
    """The RSV1 bit of each message of the connection not yet taken (True: it came
    compressed), oldest first, as a deque to pop from; None without permessage-deflate."""
    for ext in ws.protocol.extensions:
        if isinstance(ext, PerMessageDeflate):
            return ext.__dict__.setdefault("nwe_rsv1", collections.deque())
    return None


def compressible(message):
    """Whether deflate clearly shrinks the message (to 3/4 at its fastest level).
    RFC 7692 lets a sender choose per message, and our sender without context
    takeover sends a message that does not shrink as it is: only a message that
    compresses well must come compressed."""
    data = message.encode() if isinstance(message, str) else message
    return len(data) >= 64 and len(zlib.compress(data, 1)) * 4 <= len(data) * 3


_decode = PerMessageDeflate.decode


def _recording_decode(self, frame, **kwargs):
    if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
        self.__dict__.setdefault("nwe_rsv1", collections.deque()).append(frame.rsv1)
    return _decode(self, frame, **kwargs)


PerMessageDeflate.decode = _recording_decode
