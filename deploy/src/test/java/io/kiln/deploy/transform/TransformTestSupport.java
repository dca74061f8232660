package io.kiln.deploy.transform;

import java.nio.file.Path;

/** Test access to one split covering a whole CSV file. */
public final class TransformTestSupport {
  private TransformTestSupport() {}

  public static BatchTransform.SplitResult runWholeFile(BatchTransform bt, Path csv) throws Exception {
    TransformInput in = TransformInput.open(csv, TransformInput.Format.CSV);
    return bt.run(in, new BatchTransform.Split(0, 0, 0, in.records()), false, n -> {});
  }
}
