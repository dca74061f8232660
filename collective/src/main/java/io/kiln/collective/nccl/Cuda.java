package io.kiln.collective.nccl;

import org.bytedeco.cuda.global.cudart;
import org.bytedeco.cuda.global.nccl;
import org.bytedeco.javacpp.BytePointer;

import io.kiln.collective.CollectiveException;

/** Error checking for CUDA runtime and NCCL return codes. */
final class Cuda {
    private Cuda() {
    }

    static void check(int rc, String what) {
        if (rc != cudart.cudaSuccess) {
            BytePointer s = cudart.cudaGetErrorString(rc);
            throw new CollectiveException(what + " failed: CUDA error " + rc + " (" + (s == null ? "?" : s.getString())
                    + ")");
        }
    }

    static String ncclError(int rc) {
        BytePointer s = nccl.ncclGetErrorString(rc);
        return "NCCL error " + rc + " (" + (s == null ? "?" : s.getString()) + ")";
    }
}
