# scikit-learn under the SageMaker training contract: hyperparameters as arguments, data from SM_CHANNEL_TRAIN
import argparse, os, joblib, numpy as np
from sklearn.linear_model import LogisticRegression
p = argparse.ArgumentParser()
p.add_argument('--C', type=float, default=1.0)
a = p.parse_args()
d = np.loadtxt(os.path.join(os.environ['SM_CHANNEL_TRAIN'], 'data.csv'), delimiter=',')
m = LogisticRegression(C=a.C).fit(d[:, :2], d[:, 2])
print('accuracy: %.4f' % m.score(d[:, :2], d[:, 2]))
joblib.dump(m, os.path.join(os.environ['SM_MODEL_DIR'], 'model.joblib'))
