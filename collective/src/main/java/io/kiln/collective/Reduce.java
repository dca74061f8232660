package io.kiln.collective;

import java.nio.ByteBuffer;
import java.nio.FloatBuffer;

/** Element-wise float32 helpers on buffers (absolute indexing, positions untouched). */
final class Reduce {
    private Reduce() {
    }

    /** dst[dstIndex + i] += src[srcIndex + i] for i in [0, n). */
    static void add(FloatBuffer dst, int dstIndex, FloatBuffer src, int srcIndex, int n) {
        for (int i = 0; i < n; i++) {
            dst.put(dstIndex + i, dst.get(dstIndex + i) + src.get(srcIndex + i));
        }
    }

    static void scale(ByteBuffer buffer, int count, float f) {
        int p = buffer.position();
        for (int i = 0; i < count; i++) {
            int off = p + (i << 2);
            buffer.putFloat(off, buffer.getFloat(off) * f);
        }
    }

    static void scale(FloatBuffer buffer, int count, float f) {
        int p = buffer.position();
        for (int i = 0; i < count; i++) {
            buffer.put(p + i, buffer.get(p + i) * f);
        }
    }
}
