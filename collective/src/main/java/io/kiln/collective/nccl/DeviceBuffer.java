package io.kiln.collective.nccl;

import static org.bytedeco.cuda.global.cudart.cudaFree;
import static org.bytedeco.cuda.global.cudart.cudaMalloc;
import static org.bytedeco.cuda.global.cudart.cudaMemcpy;
import static org.bytedeco.cuda.global.cudart.cudaMemcpyDeviceToHost;
import static org.bytedeco.cuda.global.cudart.cudaMemcpyHostToDevice;
import static org.bytedeco.cuda.global.cudart.cudaSetDevice;

import java.nio.Buffer;
import java.nio.ByteBuffer;
import java.nio.FloatBuffer;

import org.bytedeco.javacpp.Pointer;

/** cudaMalloc'd device memory with blocking host copies. Not thread-safe. */
public final class DeviceBuffer implements AutoCloseable {
    private final int device;
    private final long bytes;
    private Pointer ptr;

    private DeviceBuffer(int device, long bytes, Pointer ptr) {
        this.device = device;
        this.bytes = bytes;
        this.ptr = ptr;
    }

    /** Allocates {@code bytes} (at least 1) on {@code device}. */
    public static DeviceBuffer allocate(int device, long bytes) {
        NcclCollective.requireAvailable();
        Cuda.check(cudaSetDevice(device), "cudaSetDevice(" + device + ")");
        Pointer p = new Pointer();
        Cuda.check(cudaMalloc(p, Math.max(1, bytes)), "cudaMalloc(" + bytes + ")");
        return new DeviceBuffer(device, bytes, p);
    }

    public Pointer pointer() {
        if (ptr == null) {
            throw new IllegalStateException("device buffer freed");
        }
        return ptr;
    }

    public long bytes() {
        return bytes;
    }

    public int device() {
        return device;
    }

    /** Copies {@code len} bytes from the direct buffer (starting at its position) to device offset 0. */
    public void copyFromHost(Buffer src, long len) {
        check(len);
        Cuda.check(cudaSetDevice(device), "cudaSetDevice");
        Cuda.check(cudaMemcpy(pointer(), hostPointer(src), len, cudaMemcpyHostToDevice), "cudaMemcpy H2D");
    }

    /** Copies {@code len} bytes from device offset 0 into the direct buffer at its position. */
    public void copyToHost(Buffer dst, long len) {
        check(len);
        Cuda.check(cudaSetDevice(device), "cudaSetDevice");
        Cuda.check(cudaMemcpy(hostPointer(dst), pointer(), len, cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
    }

    private void check(long len) {
        if (len < 0 || len > bytes) {
            throw new IllegalArgumentException(len + " bytes do not fit the device buffer of " + bytes);
        }
    }

    /** A JavaCPP pointer to the buffer's current position (position 0 inside the pointer). */
    static Pointer hostPointer(Buffer b) {
        if (!b.isDirect()) {
            throw new IllegalArgumentException("host buffer must be direct");
        }
        Buffer s;
        if (b instanceof ByteBuffer) {
            s = ((ByteBuffer) b).duplicate().position(b.position()).slice();
        } else if (b instanceof FloatBuffer) {
            s = ((FloatBuffer) b).duplicate().position(b.position()).slice();
        } else {
            throw new IllegalArgumentException("unsupported buffer " + b.getClass());
        }
        return new Pointer(s);
    }

    @Override
    public void close() {
        if (ptr != null) {
            cudaSetDevice(device);
            cudaFree(ptr);
            ptr = null;
        }
    }
}
