# The worker image of the Apache Beam runs on Dataflow (tfrecords.build and trainers.predict with
# --runner=DataflowRunner): Beam's Python 3.11 SDK container of the Beam version setup.py pins,
# with this project and its pinned TensorFlow stack installed, so workers import esci_tf and run
# the encoding core and the SavedModel as a local run does. Build and push it, then pass it as
# --sdk_container_image (BUILD.md, "Building and scoring on Dataflow"):
#   docker build -t REGION-docker.pkg.dev/PROJECT/esci/beam:0.1.0 .
#   docker push REGION-docker.pkg.dev/PROJECT/esci/beam:0.1.0
FROM apache/beam_python3.11_sdk:2.78.0

WORKDIR /opt/esci-tf
# The package alone (setup.py and the sources it ships): tests, notebooks and data stay out.
COPY setup.py README.md ./
COPY esci_tf esci_tf
COPY trainers trainers
COPY tfrecords tfrecords
# The pins of setup.py, with the beam extra: the image's Beam is replaced by the same version, and
# protobuf / pyarrow are the ones Beam and TensorFlow share (no resolver surprises on workers).
RUN pip install --no-cache-dir '.[beam]' && pip check

# The SDK harness of the base image stays the entry point (Dataflow starts it).
ENTRYPOINT ["/opt/apache/beam/boot"]
