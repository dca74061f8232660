# XGBoost's scikit-learn API; the booster is saved as JSON into SM_MODEL_DIR
import os, numpy as np, xgboost as xgb
d = np.loadtxt(os.path.join(os.environ['SM_CHANNEL_TRAIN'], 'data.csv'), delimiter=',')
m = xgb.XGBClassifier(n_estimators=int(os.environ.get('SM_HP_ROUNDS', '20')), max_depth=3, n_jobs=1)
m.fit(d[:, :2], d[:, 2])
print('accuracy: %.4f' % m.score(d[:, :2], d[:, 2]))
m.save_model(os.path.join(os.environ['SM_MODEL_DIR'], 'xgboost-model.json'))
