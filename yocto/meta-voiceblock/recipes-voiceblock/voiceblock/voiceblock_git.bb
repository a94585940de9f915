SUMMARY = "VoiceBlock: an offline phone receptionist daemon"
DESCRIPTION = "Answers a business's phone over SIP, talks with callers \
               (whisper.cpp speech recognition, Piper and espeak-ng speech \
               synthesis, all on the box), captures leads and syncs them to \
               the owner's fleet over MQTT."
HOMEPAGE = "https://github.com/voiceblock/voiceblock"
BUGTRACKER = "https://github.com/voiceblock/voiceblock/issues"
SECTION = "net"

# The project's own code is MIT or Apache-2.0. Two C/C++ code bases are
# compiled statically into the binary by their -sys crates: whisper.cpp (MIT,
# whisper-rs-sys) and espeak-ng (GPL-3.0-or-later, espeak-rs-sys), so the
# shipped binary carries the GPL.
LICENSE = "(MIT | Apache-2.0) & MIT & GPL-3.0-or-later"
LIC_FILES_CHKSUM = "\
    file://Cargo.toml;beginline=9;endline=9;md5=86b31c7756a1a7962f28b62856ed4f05 \
    file://${CARGO_VENDORING_DIRECTORY}/whisper-rs-sys-0.15.0/whisper.cpp/LICENSE;md5=1539dadbedb60aa18519febfeab70632 \
    file://${CARGO_VENDORING_DIRECTORY}/espeak-rs-sys-0.2.0/espeak-ng/src/libespeak-ng/speech.c;beginline=6;endline=17;md5=8b7bba7f2d74da440a0f877480cfb5cf \
"

# whisper-rs-sys and espeak-rs-sys build whisper.cpp and espeak-ng with CMake
# (cmake-rs) and generate their FFI bindings with bindgen (libclang).
# whisper-rs-sys could use its pregenerated bindings
# (WHISPER_DONT_GENERATE_BINDINGS), espeak-rs-sys cannot, so clang-native is
# needed either way. espeak-ng links libsonic (sonic recipe in this layer).
DEPENDS += "clang-native cmake-native sonic"

PV = "0.1.0+git"

# The layer lives in the same repository as the source. Releases set
# VOICEBLOCK_SRCREV to the tagged commit (whose voiceblock-crates.inc matches
# its Cargo.lock: CI checks that); to build a local checkout instead, use
# externalsrc (see the README), which keeps the crate:// entries below.
VOICEBLOCK_GIT_URI ?= "git://github.com/voiceblock/voiceblock.git;protocol=https;branch=main"
VOICEBLOCK_SRCREV ?= "${AUTOREV}"
SRC_URI = "${VOICEBLOCK_GIT_URI}"
SRCREV = "${VOICEBLOCK_SRCREV}"

S = "${WORKDIR}/git"

# Every crate from Cargo.lock as crate:// with its sha256, written by
# yocto/update-crates (the format of `bitbake -c update_crates voiceblock`).
require ${BPN}-crates.inc

inherit cargo cargo-update-recipe-crates pkgconfig systemd useradd

# The binary crate inside the workspace; the workspace Cargo.lock is used
# (the cargo class builds with --frozen, offline).
CARGO_SRC_DIR = "appliance/voiceblock"

CVE_PRODUCT = "voiceblock"

export LIBCLANG_PATH = "${STAGING_LIBDIR_NATIVE}"
export BINDGEN_EXTRA_CLANG_ARGS = "--sysroot=${STAGING_DIR_TARGET} --target=${TARGET_SYS}"

# whisper.cpp (ggml) must not tune for the build host: no -march=native.
# Pi 4 (Cortex-A72) is plain armv8-a; the Pi 5 (Cortex-A76, meta-raspberrypi
# tunes it as cortexa76) has dot product and fp16 arithmetic, which ggml's
# matrix kernels use. Override GGML_ARM_ARCH for other boards.
export GGML_NATIVE = "OFF"
GGML_ARM_ARCH ?= "${@bb.utils.contains('TUNE_FEATURES', 'cortexa76', 'armv8.2-a+dotprod+fp16', 'armv8-a', d)}"
export GGML_CPU_ARM_ARCH = "${GGML_ARM_ARCH}"

USERADD_PACKAGES = "${PN}"
# A dedicated system user (the unit's User=voiceblock), in `audio` for the
# ALSA handset device.
USERADD_PARAM:${PN} = "--system --home-dir ${localstatedir}/lib/voiceblock --no-create-home \
                       --shell ${base_sbindir}/nologin --groups audio --user-group voiceblock"

SYSTEMD_SERVICE:${PN} = "voiceblock.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

do_install:append() {
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/systemd/voiceblock.service ${D}${systemd_system_unitdir}/
}

FILES:${PN} += "${systemd_system_unitdir}/voiceblock.service"

# The default speech model, whisper base in q8_0, has no upstream file with
# the pinned bytes: at first boot it is made from the f16 base that
# voiceblock-models installs (requantized on the box and checked against the
# manifest's sha256; no download). Should that fail, the daemon runs on the
# f16 base and logs how to make the default.
pkg_postinst_ontarget:${PN}[doc] = "Makes the default speech model (whisper base q8_0) from the installed f16 base"
pkg_postinst_ontarget:${PN}() {
    if [ -f ${datadir}/voiceblock/models/ggml-base.bin ]; then
        VOICEBLOCK_MODELS=${datadir}/voiceblock/models \
            ${bindir}/voiceblock models fetch --only whisper-base-q8_0 || true
    fi
}

# onnxruntime (for Piper) is dlopened at run time from the models directory
# (`ort` with load-dynamic: nothing is downloaded or linked at build time);
# voiceblock-models ships it with the voices and whisper models.
RRECOMMENDS:${PN} += "voiceblock-models"

# A target daemon: no native or nativesdk variant makes sense.
BBCLASSEXTEND = ""
