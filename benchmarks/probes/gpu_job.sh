set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
pack() { tar czf $OUT/resnet_runs.tgz --exclude="*.msgpack" --exclude="*.tmp*" results/resnet_switching .cache/resnet_switching 2>/dev/null; ls -la $OUT; }
trap pack EXIT
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__)"
timeout 120 python3 .data/gpu_probe.py 2>&1 | grep -v "^W0000\|^I0000\|^E0000"
timeout 60 python3 .data/torch_probe.py 2>&1 | tail -6
timeout ${STUDY_S:-400} python3 -m samtheory resnet switching-study --dataset fashion_mnist --data-dir .data/fashion-mnist \
  --epochs ${EPOCHS:-12} --batch-size 128 --lr 0.1 --schedule cosine --rho 0.05 --switch-epochs ${KS:-6 9} --no-progress ${EXTRA:-} 2>&1 | grep -v "^W0000\|^I0000" | tail -40
ls results/resnet_switching/*
