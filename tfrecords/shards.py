"""Finding shard files and checking that every record in them can be read and parsed.

tf.data stops quietly at the end of a truncated GZIP stream and reports decompression errors
without a usable record number, so check_shard walks the TFRecord framing itself (zlib plus
the masked CRC-32C of every length and payload) to name the first bad record exactly.
"""

import struct
import zlib

import google_crc32c
import tensorflow as tf

from esci_tf.errors import DataError
from esci_tf.records import schema

_CHUNK_BYTES = 1 << 20
_PIECE_BYTES = 64  # on a zlib error, the failing chunk is re-fed in pieces this small
_HEADER = struct.Struct("<QI")  # payload length, masked CRC of the length
_FOOTER = struct.Struct("<I")  # masked CRC of the payload
_CHECK_BATCH = 1024


def list_shards(file_pattern) -> list:
    """Sorted shard paths matching a glob pattern (or a list of them); raises if none match."""
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    paths = sorted({path for pattern in patterns for path in tf.io.gfile.glob(pattern)})
    if not paths:
        raise FileNotFoundError(f"no TFRecord shards match {file_pattern!r}")
    return paths


def _masked_crc(data) -> int:
    crc = google_crc32c.value(bytes(data))
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _record_error(path: str, index: int, what: str) -> DataError:
    error = DataError(f"record {index} {what}", path=path)
    error.row = index
    return error


class _FramingScanner:
    """Counts complete, CRC-valid records in a stream of decompressed bytes."""

    def __init__(self, path: str):
        self.path = path
        self.count = 0
        self.pending = bytearray()

    def feed(self, data: bytes):
        self.pending += data
        offset = 0
        while len(self.pending) - offset >= _HEADER.size:
            length, length_crc = _HEADER.unpack_from(self.pending, offset)
            if _masked_crc(self.pending[offset : offset + 8]) != length_crc:
                raise _record_error(self.path, self.count, "cannot be read (corrupt shard: bad length checksum)")
            start = offset + _HEADER.size
            end = start + length + _FOOTER.size
            if end > len(self.pending):
                break
            (data_crc,) = _FOOTER.unpack_from(self.pending, start + length)
            if _masked_crc(self.pending[start : start + length]) != data_crc:
                raise _record_error(self.path, self.count, "cannot be read (corrupt shard: bad data checksum)")
            offset, self.count = end, self.count + 1
        del self.pending[:offset]


def _decompress(decompressor, chunk: bytes, scanner: _FramingScanner):
    """Feeds one compressed chunk; on a zlib error, locates it to a small piece first."""
    before = decompressor.copy()
    try:
        scanner.feed(decompressor.decompress(chunk))
        return decompressor
    except zlib.error:
        pass
    decompressor = before
    for start in range(0, len(chunk), _PIECE_BYTES):
        try:
            scanner.feed(decompressor.decompress(chunk[start : start + _PIECE_BYTES]))
        except zlib.error as error:
            raise _record_error(scanner.path, scanner.count, f"cannot be read (corrupt GZIP data: {error})") from None
    raise _record_error(scanner.path, scanner.count, "cannot be read (corrupt GZIP data)")


def count_records(path: str) -> int:
    """Number of records in one GZIP TFRecord shard after checking every checksum.

    Raises DataError naming the file and the first bad record (0-based) when the shard is
    truncated, corrupt or has bytes after its end.
    """
    decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
    scanner = _FramingScanner(path)
    with tf.io.gfile.GFile(path, "rb") as stream:
        while not decompressor.eof:
            chunk = stream.read(_CHUNK_BYTES)
            if not chunk:
                break
            decompressor = _decompress(decompressor, chunk, scanner)
        if not decompressor.eof or scanner.pending:
            raise _record_error(path, scanner.count, "cannot be read (truncated shard: the GZIP stream ends early)")
        if decompressor.unused_data or stream.read(1):
            raise _record_error(path, scanner.count, "cannot be read (unexpected bytes after the GZIP stream)")
    return scanner.count


def _parsed_records(path: str, max_length: int) -> tf.data.Dataset:
    spec = schema.feature_spec(max_length)
    records = tf.data.TFRecordDataset(path, compression_type=schema.COMPRESSION)
    return records.map(lambda serialized: tf.io.parse_single_example(serialized, spec))


def _check_parsing(path: str, max_length: int):
    """Parses every record with the schema; raises DataError naming the first invalid one."""
    try:
        for _ in _parsed_records(path, max_length).batch(_CHECK_BATCH):
            pass
        return
    except tf.errors.OpError:
        pass
    iterator, index = iter(_parsed_records(path, max_length)), 0
    while True:
        try:
            next(iterator)
        except StopIteration:
            return
        except tf.errors.OpError as error:
            raise _record_error(path, index, f"is invalid for max_length={max_length}: {error.message}") from None
        index += 1


def check_shard(path: str, max_length=None) -> int:
    """count_records, then (when max_length is given) parsing of every record; returns the count."""
    count = count_records(path)
    if max_length is not None:
        _check_parsing(path, max_length)
    return count


def check_shards(file_pattern, max_length=None) -> dict:
    """check_shard on every file matching the pattern; returns {path: record count}."""
    return {path: check_shard(path, max_length) for path in list_shards(file_pattern)}
