package io.kiln.deploy;

import io.kiln.deploy.transform.BatchTransform;
import io.kiln.deploy.transform.TransformTestSupport;
import java.nio.file.Path;

/** Reaches package-private batch-transform pieces from the tests' package. */
final class TestAccess {
  private TestAccess() {}

  static BatchTransform.SplitResult runFile(BatchTransform bt, Path csv) throws Exception {
    return TransformTestSupport.runWholeFile(bt, csv);
  }
}
