# HPO Studio app image: the Streamlit UI plus local CPU workers.
# Build from the repository root:  docker build -f docker/app.Dockerfile -t hpo-studio .
FROM python:3.11-slim-bookworm

# libegl1/libgl1/libgomp1: VTK's off-screen (EGL) rendering of the 3D view and its exports.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libegl1 libgl1 libglx-mesa0 libegl-mesa0 libgomp1 curl \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow \
    HPO_HOME=/data

WORKDIR /app
# Same install step as `make install` and CI: one requirements file.
COPY requirements.txt requirements-base.txt ./
RUN pip install -r requirements.txt

COPY streamlit_app.py ./
COPY .streamlit ./.streamlit
COPY app ./app
COPY core ./core

# app/scene_component/cache: the 3D viewer writes vtk.js and each trial's scene there (served with
# the component); it must be writable by the app's user, or the viewer has no script to load
RUN useradd --create-home --uid 1000 studio && mkdir -p /data /app/app/scene_component/cache \
    && chown studio /data /app/app/scene_component/cache
USER 1000
VOLUME ["/data"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s CMD ["curl", "-fsS", "http://localhost:8501/_stcore/health"]
CMD ["python", "-m", "app.serve", "--server.address=0.0.0.0", "--server.port=8501", "--server.headless=true"]
