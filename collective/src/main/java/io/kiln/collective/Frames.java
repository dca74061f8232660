package io.kiln.collective;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Wire format of the ring. Every frame is a 32-byte big-endian header followed by
 * {@code length} payload bytes:
 * <pre>
 *  0 magic    int   0x4B494C4E ("KILN")
 *  4 gen      int   group generation
 *  8 seq      int   operation sequence number (1, 2, ... per group; 0 in the handshake)
 * 12 item     int   index of this frame within the operation (step * chunks + chunk)
 * 16 op       short HELLO, ACK, REJECT, ALLREDUCE, BROADCAST, BARRIER
 * 18 src      short sender rank
 * 20 length   int   payload bytes
 * 24 count    int   element count of the operation (world size in HELLO)
 * 28 aux      int   broadcast root; protocol version in HELLO
 * </pre>
 * Payload floats travel in the byte order of the caller's buffer (native order in practice).
 */
final class Frames {
    private Frames() {
    }

    static final int MAGIC = 0x4B494C4E;
    static final int HEADER_BYTES = 32;
    static final int PROTOCOL_VERSION = 1;

    static final short OP_HELLO = 1;
    static final short OP_ACK = 2;
    static final short OP_REJECT = 3;
    static final short OP_ALLREDUCE = 10;
    static final short OP_BROADCAST = 11;
    static final short OP_BARRIER = 12;

    /**
     * HELLO payload: world size, chunkBytes, smallMessageBytes, shared-memory path length L; when
     * L > 0 followed by the link token (8 bytes) and the UTF-8 path of the offered link file.
     * ACK: {@code item} = 1 when the shared-memory link was accepted.
     */
    static final int HELLO_PAYLOAD_BYTES = 16;
    static final int MAX_SHM_PATH = 1024;

    static final int O_MAGIC = 0;
    static final int O_GEN = 4;
    static final int O_SEQ = 8;
    static final int O_ITEM = 12;
    static final int O_OP = 16;
    static final int O_SRC = 18;
    static final int O_LENGTH = 20;
    static final int O_COUNT = 24;
    static final int O_AUX = 28;

    static ByteBuffer newHeader() {
        return ByteBuffer.allocateDirect(HEADER_BYTES).order(ByteOrder.BIG_ENDIAN);
    }

    /** Fills {@code h} (absolute puts) and rewinds it to [0, 32). */
    static void put(ByteBuffer h, int gen, int seq, int item, short op, int src, int length, int count, int aux) {
        h.clear();
        putAt(h, 0, gen, seq, item, op, src, length, count, aux);
    }

    /** Writes a header at byte offset {@code b} of {@code h} (absolute puts, position untouched). */
    static void putAt(ByteBuffer h, int b, int gen, int seq, int item, short op, int src, int length, int count,
                      int aux) {
        h.putInt(b + O_MAGIC, MAGIC);
        h.putInt(b + O_GEN, gen);
        h.putInt(b + O_SEQ, seq);
        h.putInt(b + O_ITEM, item);
        h.putShort(b + O_OP, op);
        h.putShort(b + O_SRC, (short) src);
        h.putInt(b + O_LENGTH, length);
        h.putInt(b + O_COUNT, count);
        h.putInt(b + O_AUX, aux);
    }

    static String opName(int op) {
        switch (op) {
            case OP_HELLO: return "hello";
            case OP_ACK: return "ack";
            case OP_REJECT: return "reject";
            case OP_ALLREDUCE: return "all-reduce";
            case OP_BROADCAST: return "broadcast";
            case OP_BARRIER: return "barrier";
            default: return "op(" + op + ")";
        }
    }
}
