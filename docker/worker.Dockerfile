# HPO Studio RunPod serverless worker: trains one TrialSpec per job on the worker's GPU(s).
# Build from the repository root and push where RunPod can pull it:
#   docker build -f docker/worker.Dockerfile -t <registry>/hpo-studio-worker:<version> .
#   docker push <registry>/hpo-studio-worker:<version>
# Deployment steps: docs/runpod.md.
FROM tensorflow/tensorflow:2.21.0-gpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HPO_HOME=/data \
    HPO_EXECUTOR=runpod \
    HPO_WORKER_CONCURRENCY=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    TF_FORCE_GPU_ALLOW_GROWTH=true

WORKDIR /app

# The base image already ships TensorFlow built for CUDA.  requirements.txt pins
# tensorflow-cpu (for CPU machines), which would replace it, and the UI stack (Streamlit,
# PyVista/VTK) that a worker never imports; so install only the worker's packages, at the
# versions requirements-base.txt pins (one place for versions).
COPY requirements-base.txt .
RUN grep -E '^(keras|optuna|numpy|scikit-learn|pillow|runpod|requests)([=<>!~ ]|$)' requirements-base.txt > /tmp/worker-requirements.txt \
    && pip install --no-cache-dir -r /tmp/worker-requirements.txt \
    && rm /tmp/worker-requirements.txt

# The engine only: the worker imports core/, never app/.
COPY core ./core

# Data sets are cached under $HPO_HOME/datasets; attach a network volume and set
# HPO_DATASETS=/runpod-volume/datasets to download each one once for all workers.
RUN mkdir -p /data

CMD ["python", "core/worker.py"]
