"""A metric that moves with the seed (0.90, 0.92, 0.94), a log event and a tiny plot."""
import struct
import zlib

from fmbuild.evidence import kit

run = kit.start(__file__)
score = round(0.90 + 0.02 * run.seed, 4)
run.log("score.measured", score=score, seed=run.seed)
run.log("score.measured", score=score, second=True)
run.log("html.probe", text="<script>alert(1)</script> ``` fence")
run.metric("score", score)
run.metric("errors", 3 - run.seed)
run.metric("label", "stable")


def png(width: int = 2, height: int = 2) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


with open(run.artifact("score.png"), "wb") as handle:
    handle.write(png())
run.finish()
