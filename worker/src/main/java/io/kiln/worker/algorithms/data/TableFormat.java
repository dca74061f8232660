package io.kiln.worker.algorithms.data;

import java.util.Locale;

/** Input formats of the built-in algorithms, by their SageMaker content types. */
public enum TableFormat {
  /** Label in the first column, no header row (SageMaker's built-ins); empty fields are missing values. */
  CSV("text/csv"),
  /** {@code label[:weight] [qid:q] index:value ...}; absent indices are missing values. */
  LIBSVM("text/libsvm"),
  /** MNIST / Fashion-MNIST IDX files (train-* and t10k-*): pixels / 255 as features, the digit as label. */
  IDX("application/x-idx");

  private final String contentType;

  TableFormat(String contentType) {
    this.contentType = contentType;
  }

  public String contentType() {
    return contentType;
  }

  /**
   * The format a {@code content_type} hyperparameter names: {@code text/csv}, {@code text/libsvm},
   * {@code application/x-idx} (also {@code csv}, {@code libsvm}, {@code text/x-libsvm}, {@code idx});
   * parameters after {@code ;} are ignored, except that CSV's {@code label_size} must be 1.
   */
  public static TableFormat fromContentType(String value) {
    String v = value.trim().toLowerCase(Locale.ROOT);
    String params = "";
    int semi = v.indexOf(';');
    if (semi >= 0) {
      params = v.substring(semi + 1).trim();
      v = v.substring(0, semi).trim();
    }
    TableFormat f;
    switch (v) {
      case "text/csv":
      case "csv":
        f = CSV;
        break;
      case "text/libsvm":
      case "text/x-libsvm":
      case "libsvm":
        f = LIBSVM;
        break;
      case "application/x-idx":
      case "idx":
        f = IDX;
        break;
      default:
        throw new IllegalArgumentException("content_type '" + value.trim()
            + "' is not supported (supported: text/csv, text/libsvm, application/x-idx)");
    }
    for (String p : params.split(";")) {
      String[] kv = p.trim().split("=", 2);
      if (kv.length == 2 && kv[0].trim().equals("label_size") && !kv[1].trim().equals("1")) {
        throw new IllegalArgumentException("content_type '" + value.trim() + "': only label_size=1 is supported");
      }
    }
    return f;
  }
}
