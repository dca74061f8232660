package io.kiln.collective;

import java.nio.ByteBuffer;
import java.nio.FloatBuffer;

/** Zero-copy byte views of direct float buffers (through JavaCPP's JNI helpers when present). */
final class Buffers {
    private Buffers() {
    }

    private static volatile Boolean javacppUsable;

    /**
     * A ByteBuffer over the same memory as {@code count} floats of the direct buffer {@code fb}
     * starting at its position, in {@code fb}'s byte order; null when no alias can be made
     * (heap buffer, or JavaCPP's native helper could not load): the caller then stages.
     */
    static ByteBuffer alias(FloatBuffer fb, int count) {
        if (!fb.isDirect() || fb.isReadOnly()) {
            return null;
        }
        Boolean usable = javacppUsable;
        if (usable != null && !usable) {
            return null;
        }
        try {
            FloatBuffer s = fb.duplicate().position(fb.position()).slice();
            long bytes = (long) count * 4;
            org.bytedeco.javacpp.FloatPointer fp = new org.bytedeco.javacpp.FloatPointer(s);
            ByteBuffer b = new org.bytedeco.javacpp.BytePointer(fp).position(0).limit(bytes).capacity(bytes)
                    .asByteBuffer();
            javacppUsable = Boolean.TRUE;
            return b.order(fb.order());
        } catch (Throwable t) {
            javacppUsable = Boolean.FALSE;
            return null;
        }
    }
}
