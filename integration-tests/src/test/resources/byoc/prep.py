# A processing job: standardise raw/data.csv with scikit-learn, split it into the train and test outputs
import argparse, os, numpy as np
from sklearn.preprocessing import StandardScaler
p = argparse.ArgumentParser()
p.add_argument('--test-fraction', type=float, required=True)
a = p.parse_args()
d = np.loadtxt(os.path.join(os.environ['KILN_INPUT_RAW'], 'data.csv'), delimiter=',')
x = StandardScaler().fit_transform(d[:, :2])
out = np.column_stack([x, d[:, 2]])
n = int(len(out) * (1 - a.test_fraction))
np.savetxt(os.path.join(os.environ['KILN_OUTPUT_TRAIN'], 'data.csv'), out[:n], delimiter=',', fmt='%.6f')
np.savetxt(os.path.join(os.environ['KILN_OUTPUT_TEST'], 'data.csv'), out[n:], delimiter=',', fmt='%.6f')
print('rows: %d' % len(out))
