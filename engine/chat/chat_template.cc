#include "engine/chat/chat_template.h"
