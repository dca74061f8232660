package io.kiln.worker.training;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;

/**
 * SGD with momentum, PyTorch's semantics ({@code torch.optim.SGD} with {@code dampening=0},
 * {@code nesterov=False}, no weight decay) and a fixed learning rate:
 *
 * <pre>
 *   v = momentum * v + g      (first step: v = g, as the buffers start at zero)
 *   w = w - lr * v
 * </pre>
 *
 * <p>Unlike DJL's {@code Sgd}, whose momentum state is private (and holds {@code lr * v}), the
 * buffers {@code v} are ordinary NDArrays, one per parameter in parameter order, so a checkpoint can
 * save and restore them ({@link #buffers()}). Everything is updated in place; a step allocates one
 * temporary per parameter ({@code lr * v}: DJL has no fused {@code add_(v, alpha)}). Gradients are
 * read, never modified: zeroing them for the next backward pass is the caller's job.
 *
 * <p>Not thread-safe: the training thread owns it. {@link #close()} frees the buffers.
 */
public final class MomentumSgd implements AutoCloseable {
  /** The name recorded in checkpoints. */
  public static final String NAME = "momentum_sgd";

  private final float learningRate;
  private final float momentum;
  private final NDManager manager;
  private final NDList buffers;

  /**
   * @param parameters the trainable parameters, in the order {@link #step} will receive them; the
   *     buffers (zeros, same shapes, float32) live in a sub-manager of the first parameter's manager
   */
  public MomentumSgd(float learningRate, float momentum, NDList parameters) {
    if (!(learningRate >= 0f) || Float.isInfinite(learningRate)) {
      throw new IllegalArgumentException("learning rate must be a finite number >= 0, got " + learningRate);
    }
    if (!(momentum >= 0f && momentum < 1f)) throw new IllegalArgumentException("momentum outside [0, 1): " + momentum);
    if (parameters.isEmpty()) throw new IllegalArgumentException("no parameters to optimise");
    this.learningRate = learningRate;
    this.momentum = momentum;
    this.manager = parameters.get(0).getManager().newSubManager();
    this.buffers = new NDList(parameters.size());
    for (NDArray p : parameters) {
      if (p.getDataType() != DataType.FLOAT32) {
        throw new IllegalArgumentException("parameter " + p.getName() + " is " + p.getDataType() + ", not float32");
      }
      buffers.add(manager.zeros(p.getShape(), DataType.FLOAT32));
    }
  }

  public float learningRate() {
    return learningRate;
  }

  public float momentum() {
    return momentum;
  }

  /** The momentum buffers, one per parameter in parameter order (live: do not close them). */
  public NDList buffers() {
    return buffers;
  }

  /**
   * One update of every parameter, in place: {@code v_i = momentum * v_i + g_i; w_i -= lr * v_i}.
   * Must run with grad mode off (the training loop's default).
   */
  public void step(NDList parameters, NDList gradients) {
    if (parameters.size() != buffers.size() || gradients.size() != buffers.size()) {
      throw new IllegalArgumentException("expected " + buffers.size() + " parameters and gradients, got "
          + parameters.size() + " and " + gradients.size());
    }
    for (int i = 0; i < buffers.size(); i++) {
      NDArray v = buffers.get(i);
      v.muli(momentum).addi(gradients.get(i));
      try (NDArray delta = v.mul(learningRate)) {
        parameters.get(i).subi(delta);
      }
    }
  }

  /**
   * Replaces buffer {@code i}'s values with {@code src} (float32, native or little-endian order as
   * the buffer says), writing through the array's own memory (never {@code NDArray.set}, see STACK.md).
   */
  public void load(int i, FloatBuffer src) {
    writeInto(buffers.get(i), src);
  }

  /**
   * Copies {@code src} into {@code target}'s memory in place through its direct buffer. {@code src}
   * must hold exactly {@code target.size()} floats from its position; it is not consumed.
   * {@code target} must be a dense, contiguous float32 CPU array (parameters and momentum buffers
   * are): for anything else DJL's direct buffer is a copy and the write would be lost.
   */
  public static void writeInto(NDArray target, FloatBuffer src) {
    FloatBuffer dst = target.toByteBuffer(true).order(ByteOrder.nativeOrder()).asFloatBuffer();
    if (src.remaining() != dst.remaining()) {
      throw new IllegalArgumentException("size mismatch: " + src.remaining() + " values for an array of "
          + dst.remaining() + " (" + target.getShape() + ")");
    }
    dst.put(src.duplicate());
  }

  @Override
  public void close() {
    manager.close();
  }
}
