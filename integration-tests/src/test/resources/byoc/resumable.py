# Checkpoints its step into KILN_CHECKPOINT_DIR every second (write, then rename) and resumes from it.
import os, sys, time
ck = os.path.join(os.environ['KILN_CHECKPOINT_DIR'], 'step.txt')
start = int(open(ck).read()) if os.path.exists(ck) else 0
with open(sys.argv[sys.argv.index('--pid-file') + 1], 'a') as f:
    f.write('%d\n' % os.getpid())
print('resumed_from: %d' % start, flush=True)
step = start
while True:
    step += 1
    with open(ck + '.tmp', 'w') as f:
        f.write(str(step))
    os.replace(ck + '.tmp', ck)
    print('step: %d' % step, flush=True)
    if start > 0 and step >= start + 3:
        break
    time.sleep(1)
open(os.path.join(os.environ['SM_MODEL_DIR'], 'steps.txt'), 'w').write(str(step))
