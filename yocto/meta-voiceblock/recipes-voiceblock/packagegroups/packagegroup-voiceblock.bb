SUMMARY = "VoiceBlock appliance: the daemon, its models and runtime tools"
DESCRIPTION = "Add to an image with IMAGE_INSTALL:append = \" packagegroup-voiceblock\"."
HOMEPAGE = "https://github.com/voiceblock/voiceblock"
BUGTRACKER = "https://github.com/voiceblock/voiceblock/issues"
SECTION = "misc"
LICENSE = "MIT"

inherit packagegroup

RDEPENDS:${PN} = "\
    alsa-utils-alsactl \
    alsa-utils-amixer \
    ca-certificates \
    tzdata \
    voiceblock \
    voiceblock-models \
"
