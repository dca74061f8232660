package io.kiln.worker.training;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import org.junit.jupiter.api.Test;

class MomentumSgdTest {

  /** PyTorch's SGD (dampening 0, no nesterov): v = m*v + g (v = g at first), w -= lr*v; by hand. */
  @Test
  void matchesAHandComputation() {
    try (NDManager m = NDManager.newBaseManager(Device.cpu(), "PyTorch")) {
      NDArray w = m.create(new float[] {1f, -2f, 0.5f, 3f}, new Shape(2, 2));
      NDArray b = m.create(new float[] {0.25f});
      try (MomentumSgd sgd = new MomentumSgd(0.1f, 0.9f, new NDList(w, b))) {
        // step 1: v = g
        sgd.step(new NDList(w, b), new NDList(m.create(new float[] {0.5f, -1f, 2f, 0f}, new Shape(2, 2)),
            m.create(new float[] {4f})));
        assertArrayEquals(new float[] {0.5f, -1f, 2f, 0f}, sgd.buffers().get(0).toFloatArray(), 0f);
        assertArrayEquals(new float[] {1f - 0.05f, -2f + 0.1f, 0.5f - 0.2f, 3f}, w.toFloatArray(), 1e-7f);
        assertArrayEquals(new float[] {0.25f - 0.4f}, b.toFloatArray(), 1e-7f);
        // step 2: v = 0.9 v + g
        sgd.step(new NDList(w, b), new NDList(m.create(new float[] {1f, 1f, -1f, 2f}, new Shape(2, 2)),
            m.create(new float[] {-4f})));
        float[] v = {0.9f * 0.5f + 1f, 0.9f * -1f + 1f, 0.9f * 2f - 1f, 2f};
        assertArrayEquals(v, sgd.buffers().get(0).toFloatArray(), 1e-7f);
        assertArrayEquals(new float[] {0.9f * 4f - 4f}, sgd.buffers().get(1).toFloatArray(), 1e-7f);
        assertArrayEquals(new float[] {0.95f - 0.1f * v[0], -1.9f - 0.1f * v[1], 0.3f - 0.1f * v[2], 3f - 0.1f * v[3]},
            w.toFloatArray(), 1e-6f);
        assertArrayEquals(new float[] {-0.15f - 0.1f * (0.9f * 4f - 4f)}, b.toFloatArray(), 1e-6f);
      }
    }
  }

  @Test
  void withoutMomentumItIsPlainSgd() {
    try (NDManager m = NDManager.newBaseManager(Device.cpu(), "PyTorch")) {
      NDArray w = m.create(new float[] {1f, 2f});
      try (MomentumSgd sgd = new MomentumSgd(0.5f, 0f, new NDList(w))) {
        sgd.step(new NDList(w), new NDList(m.create(new float[] {2f, -2f})));
        sgd.step(new NDList(w), new NDList(m.create(new float[] {2f, -2f})));
        assertArrayEquals(new float[] {-1f, 4f}, w.toFloatArray(), 0f);
      }
    }
  }

  /** Buffers (and parameters) can be restored in place from little-endian data, as a checkpoint holds it. */
  @Test
  void loadsBuffersInPlace() {
    try (NDManager m = NDManager.newBaseManager(Device.cpu(), "PyTorch")) {
      NDArray w = m.create(new float[] {0f, 0f, 0f});
      try (MomentumSgd sgd = new MomentumSgd(1f, 0.5f, new NDList(w))) {
        NDArray buffer = sgd.buffers().get(0);
        FloatBuffer src = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().put(new float[] {1, 2, 3})
            .flip();
        sgd.load(0, src);
        assertArrayEquals(new float[] {1, 2, 3}, buffer.toFloatArray(), 0f);
        sgd.step(new NDList(w), new NDList(m.create(new float[] {0f, 0f, 2f})));
        assertArrayEquals(new float[] {0.5f, 1f, 3.5f}, buffer.toFloatArray(), 0f);
        assertArrayEquals(new float[] {-0.5f, -1f, -3.5f}, w.toFloatArray(), 0f);
        assertThrows(IllegalArgumentException.class,
            () -> sgd.load(0, FloatBuffer.wrap(new float[] {1, 2})));
      }
    }
  }

  @Test
  void rejectsBadSettings() {
    try (NDManager m = NDManager.newBaseManager(Device.cpu(), "PyTorch")) {
      NDList w = new NDList(m.create(new float[] {1f}));
      assertThrows(IllegalArgumentException.class, () -> new MomentumSgd(0.1f, 1f, w));
      assertThrows(IllegalArgumentException.class, () -> new MomentumSgd(Float.NaN, 0.9f, w));
    }
  }
}
