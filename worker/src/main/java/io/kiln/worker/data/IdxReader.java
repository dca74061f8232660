package io.kiln.worker.data;

import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.zip.GZIPInputStream;
import java.util.zip.ZipException;

/**
 * Reads the IDX files of MNIST and Fashion-MNIST (raw or gzip-compressed, detected by content).
 *
 * <p>Images are {@code idx3-ubyte} (magic {@code 0x00000803}, then count, rows, cols, then one
 * unsigned byte per pixel); labels are {@code idx1-ubyte} (magic {@code 0x00000801}, then count,
 * then one byte per label). Every check failure is a {@link DataException} naming the file.
 */
public final class IdxReader {
  public static final int IMAGES_MAGIC = 0x00000803;
  public static final int LABELS_MAGIC = 0x00000801;
  /** Refuse absurd headers before allocating: 2^31 bytes is far beyond any IDX image set we train on. */
  private static final long MAX_BYTES = Integer.MAX_VALUE - 8;

  private IdxReader() {}

  /** Images: {@code count} images of {@code rows x cols} unsigned bytes, row-major, image after image. */
  public record Images(int count, int rows, int cols, byte[] pixels) {
    public int pixelsPerImage() {
      return rows * cols;
    }
  }

  public static Images readImages(Path file) throws DataException {
    try (DataInputStream in = open(file)) {
      int magic = readHeaderInt(in, file, "magic number");
      if (magic != IMAGES_MAGIC) {
        throw new DataException(file + ": wrong magic number 0x" + hex(magic) + " (an idx3-ubyte image file starts with 0x"
            + hex(IMAGES_MAGIC) + ")");
      }
      int count = readHeaderInt(in, file, "image count");
      int rows = readHeaderInt(in, file, "row count");
      int cols = readHeaderInt(in, file, "column count");
      if (count <= 0 || rows <= 0 || cols <= 0) {
        throw new DataException(file + ": invalid header (count " + count + ", rows " + rows + ", cols " + cols + ")");
      }
      long size = (long) count * rows * cols;
      if (size > MAX_BYTES) {
        throw new DataException(file + ": header announces " + size + " pixel bytes, more than this reader supports");
      }
      byte[] pixels = new byte[(int) size];
      readBody(in, pixels, file, count + " images of " + rows + "x" + cols);
      return new Images(count, rows, cols, pixels);
    } catch (DataException e) {
      throw e;
    } catch (IOException e) {
      throw describe(file, e);
    }
  }

  /** Labels as unsigned values 0..255. */
  public static int[] readLabels(Path file) throws DataException {
    try (DataInputStream in = open(file)) {
      int magic = readHeaderInt(in, file, "magic number");
      if (magic != LABELS_MAGIC) {
        throw new DataException(file + ": wrong magic number 0x" + hex(magic) + " (an idx1-ubyte label file starts with 0x"
            + hex(LABELS_MAGIC) + ")");
      }
      int count = readHeaderInt(in, file, "label count");
      if (count <= 0) throw new DataException(file + ": invalid header (label count " + count + ")");
      byte[] raw = new byte[count];
      readBody(in, raw, file, count + " labels");
      int[] labels = new int[count];
      for (int i = 0; i < count; i++) labels[i] = raw[i] & 0xff;
      return labels;
    } catch (DataException e) {
      throw e;
    } catch (IOException e) {
      throw describe(file, e);
    }
  }

  private static DataInputStream open(Path file) throws IOException {
    if (!Files.exists(file)) throw new DataException(file + ": no such file");
    if (!Files.isRegularFile(file)) throw new DataException(file + ": not a regular file");
    if (!Files.isReadable(file)) throw new DataException(file + ": not readable (permission denied)");
    InputStream raw = new BufferedInputStream(Files.newInputStream(file), 1 << 16);
    raw.mark(2);
    int b0 = raw.read();
    int b1 = raw.read();
    raw.reset();
    if (b0 == 0x1f && b1 == 0x8b) {
      try {
        raw = new BufferedInputStream(new GZIPInputStream(raw, 1 << 16), 1 << 16);
      } catch (IOException e) {
        raw.close();
        throw new DataException(file + ": corrupt gzip header: " + e.getMessage(), e);
      }
    }
    return new DataInputStream(raw);
  }

  private static int readHeaderInt(DataInputStream in, Path file, String what) throws IOException {
    try {
      return in.readInt();
    } catch (EOFException e) {
      throw new DataException(file + ": truncated header (file ends before the " + what + ")");
    }
  }

  private static void readBody(DataInputStream in, byte[] target, Path file, String what) throws IOException {
    int off = 0;
    while (off < target.length) {
      int n = in.read(target, off, target.length - off);
      if (n < 0) {
        throw new DataException(file + ": truncated: header announces " + what + " (" + target.length
            + " bytes) but the file ends after " + off + " bytes of data");
      }
      off += n;
    }
    if (in.read() >= 0) {
      throw new DataException(file + ": corrupt: data continues after the " + what + " the header announces");
    }
  }

  private static DataException describe(Path file, IOException e) {
    if (e instanceof NoSuchFileException) return new DataException(file + ": no such file", e);
    if (e instanceof AccessDeniedException) return new DataException(file + ": not readable (permission denied)", e);
    if (e instanceof ZipException || e instanceof EOFException) {
      return new DataException(file + ": corrupt or truncated gzip data (" + e.getMessage() + ")", e);
    }
    return new DataException(file + ": cannot read: " + e, e);
  }

  private static String hex(int v) {
    return String.format("%08x", v);
  }
}
