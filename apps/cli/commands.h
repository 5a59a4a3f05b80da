#pragma once

namespace fc::cli {

int cmd_generate(int argc, char** argv);
int cmd_inspect(int argc, char** argv);
int cmd_synth(int argc, char** argv);
int cmd_serve(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_template(int argc, char** argv);
int cmd_parse(int argc, char** argv);
int cmd_quantize(int argc, char** argv);
int cmd_kl(int argc, char** argv);
int cmd_constrain(int argc, char** argv);

}  // namespace fc::cli
