SUMMARY = "Speech models and the onnxruntime library for VoiceBlock"
DESCRIPTION = "Whisper (ggml) recognition models, the Piper en_US-joe-medium \
               voice, the onnxruntime shared library Piper runs on and \
               espeak-ng's data, each pinned by sha256 as in \
               models/manifest.toml."
HOMEPAGE = "https://github.com/voiceblock/voiceblock"
BUGTRACKER = "https://github.com/voiceblock/voiceblock/issues"
SECTION = "multimedia"

# whisper models MIT, Piper voice MIT (training data CC0-1.0), onnxruntime
# MIT, espeak-ng data GPL-3.0-or-later. The model files carry no licence
# text; the onnxruntime wheel and the espeak-ng-data package do.
LICENSE = "MIT & CC0-1.0 & GPL-3.0-or-later"
LIC_FILES_CHKSUM = "\
    file://onnxruntime-wheel/onnxruntime/LICENSE;md5=0f7e3b1308cb5c00b372a6e78835732d \
    file://espeak-ng-deb/usr/share/doc/espeak-ng-data/copyright;md5=d9a0cca255d7ca7c7541fecb87b48bef \
"

# Each sha256 below is the one in models/manifest.toml (the whisper and Piper
# files' official homes serve exactly the pinned bytes; onnxruntime comes
# from its PyPI wheel, whose archive sha256 the manifest pins, because the
# GitHub release tarball is a different build). espeak-ng-data is Debian's
# arm64 build of espeak-ng 1.52, the version espeak-rs-sys compiles in.
SRC_URI = "\
    https://huggingface.co/ggerganov/whisper.cpp/resolve/main/ggml-base.bin;name=whisper-base;unpack=0;downloadfilename=${BPN}-${PV}-ggml-base.bin \
    https://huggingface.co/ggerganov/whisper.cpp/resolve/main/ggml-tiny.en.bin;name=whisper-tiny-en;unpack=0;downloadfilename=${BPN}-${PV}-ggml-tiny.en.bin \
    https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0/en/en_US/joe/medium/en_US-joe-medium.onnx;name=piper-joe;unpack=0;downloadfilename=${BPN}-${PV}-en_US-joe-medium.onnx \
    https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0/en/en_US/joe/medium/en_US-joe-medium.onnx.json;name=piper-joe-json;unpack=0;downloadfilename=${BPN}-${PV}-en_US-joe-medium.onnx.json \
    https://files.pythonhosted.org/packages/02/ee/b173a49293b146b54bd057bf8681a015aef764d8f56d999ad8c6e53ab18d/onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_aarch64.whl;name=onnxruntime;downloadfilename=${BPN}-${PV}-onnxruntime-1.31.1-aarch64.zip;subdir=onnxruntime-wheel \
    http://deb.debian.org/debian/pool/main/e/espeak-ng/espeak-ng-data_1.52.0+dfsg-5~bpo12+1_arm64.deb;name=espeak-ng-data;downloadfilename=${BPN}-${PV}-espeak-ng-data_1.52.0_arm64.deb;subdir=espeak-ng-deb \
"
SRC_URI[whisper-base.sha256sum] = "1476a073db05a2bfbd31e18b45bf032154dd0c9585f14f45798145e793346f52"
SRC_URI[whisper-tiny-en.sha256sum] = "0a3d89bff92413f66da4d9a9280b746db71acad5196c05096546d56b361fd197"
SRC_URI[piper-joe.sha256sum] = "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"
SRC_URI[piper-joe-json.sha256sum] = "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33"
SRC_URI[onnxruntime.sha256sum] = "da05378364c44d4407e463982d2bf8d5e4cfea873283757e48beeb41df97b7f3"
SRC_URI[espeak-ng-data.sha256sum] = "aac371952ac7fb51cc41a581f5953f1942b30a2774f7e8029e0cc44352c6f56b"

S = "${WORKDIR}"

# onnxruntime and espeak-ng-data are aarch64 builds.
COMPATIBLE_HOST = "aarch64.*-linux"

CVE_PRODUCT = "onnxruntime"

# The same layout as the model cache (`file` in the manifest), so the unit's
# VOICEBLOCK_MODELS=/usr/share/voiceblock/models finds everything; the
# library itself lives in ${libdir} and the models directory links to it.
MODELS_DIR = "${datadir}/voiceblock/models"

# onnxruntime is a prebuilt, already stripped library.
INHIBIT_PACKAGE_STRIP = "1"
INHIBIT_PACKAGE_DEBUG_SPLIT = "1"

do_install() {
    install -d ${D}${MODELS_DIR}/onnxruntime/aarch64 ${D}${datadir} ${D}${libdir}
    for f in ggml-base.bin ggml-tiny.en.bin en_US-joe-medium.onnx en_US-joe-medium.onnx.json; do
        install -m 0644 ${S}/${BPN}-${PV}-$f ${D}${MODELS_DIR}/$f
    done
    install -m 0755 ${S}/onnxruntime-wheel/onnxruntime/capi/libonnxruntime.so.1.31.1 ${D}${libdir}/
    ln -sf ${libdir}/libonnxruntime.so.1.31.1 ${D}${MODELS_DIR}/onnxruntime/aarch64/libonnxruntime.so.1.31.1
    cp -R --no-preserve=ownership ${S}/espeak-ng-deb/usr/lib/aarch64-linux-gnu/espeak-ng-data ${D}${datadir}/
}

FILES:${PN} += "${MODELS_DIR} ${datadir}/espeak-ng-data ${libdir}/libonnxruntime.so.1.31.1"

# Data and a prebuilt library: nothing to build natively.
BBCLASSEXTEND = ""
