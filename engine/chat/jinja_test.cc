#include "engine/chat/jinja.h"

#include <gtest/gtest.h>

#include "engine/chat/chat_template.h"

namespace relayout::jinja {
namespace {

std::string Render(std::string_view source, const RenderLimits& limits = {}) {
  Result<std::unique_ptr<const Template>> t = Template::Compile(source);
  if (!t.ok()) return "COMPILE: " + t.status().message();
  ValueDict vars;
  vars.Set(Value::String("messages"),
           Value::List({Value::Dict({{{Value::String("role"), Value::String("user")},
                                      {Value::String("content"), Value::String("Hi")}}})}));
  Result<std::string> out = (*t)->Render(vars, limits);
  return out.ok() ? *out : "ERROR: " + out.status().message();
}

TEST(JinjaTest, OutputsLiteralsAsPythonPrintsThem) {
  EXPECT_EQ(Render("{{ [1, 'a', none, true, 1.0, {'k': 2}] }}"),
            "[1, 'a', None, True, 1.0, {'k': 2}]");
  EXPECT_EQ(Render("{{ 7 / 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 1e16 }} {{ 'a' ~ 1 }}"),
            "3.5 -4 2 1e+16 a1");
}

TEST(JinjaTest, TrimBlocksAndLstripBlocksAreOn) {
  EXPECT_EQ(Render("a\n  {% if true %}\n  b\n  {% endif %}\nc"), "a\n  b\nc");
  EXPECT_EQ(Render("a  {%- if true -%}  b  {%- endif %}"), "ab");
}

TEST(JinjaTest, LoopVariablesAndFilters) {
  EXPECT_EQ(Render("{% for x in [5, 6, 7] if x != 6 %}{{ loop.index }}{{ loop.last }}"
                   "{{ loop.length }}{% else %}none{% endfor %}"),
            "1False22True2");
  EXPECT_EQ(Render("{% for x in [] %}{% else %}none{% endfor %}"), "none");
}

// Each of these was found by rendering real models' templates (llama.cpp's
// source distribution carries 70 under models/templates) against jinja2.
TEST(JinjaTest, SetMacroDefaultsAndLoopFiltersTakeAConditionalExpression) {
  EXPECT_EQ(Render("{% set x = 1 if y is defined else 2 %}{{ x }}"), "2");
  EXPECT_EQ(Render("{% set a, b = 1 if true else 0, 3 %}{{ a }}{{ b }}"), "13");
  EXPECT_EQ(Render("{% macro m(v=1 if false else 5) %}{{ v }}{% endmacro %}{{ m() }}"), "5");
  EXPECT_EQ(Render("{% for x in [1, 2, 3] if (x if x > 1 else 0) %}{{ x }}{% endfor %}"), "23");
}

TEST(JinjaTest, SelectattrOfNoneIsEmpty) {
  EXPECT_EQ(Render("{% set tools = none %}{{ tools | selectattr('type', 'equalto', 'x') | list "
                   "| length }}{{ missing | reject | list }}"),
            "0[]");
}

TEST(JinjaTest, AnUnknownFilterInsideAnIfFailsOnlyWhenRendered) {
  EXPECT_EQ(Render("{% if false %}{{ x | from_json }}{% endif %}ok"), "ok");
  EXPECT_EQ(Render("{% if true %}{{ x | from_json }}{% endif %}"),
            "ERROR: chat template: line 1: No filter named 'from_json'");
  EXPECT_EQ(Render("{{ x | from_json }}"),
            "COMPILE: chat template: line 1: unsupported filter "
            "'from_json'");
}

TEST(JinjaTest, DictsortSortsPairsByKeyOrValue) {
  EXPECT_EQ(Render("{{ {'b': 1, 'A': 3, 'c': 2} | dictsort }}"), "[('A', 3), ('b', 1), ('c', 2)]");
  EXPECT_EQ(Render("{{ {'b': 1, 'A': 3, 'c': 2} | dictsort(true) }}"),
            "[('A', 3), ('b', 1), ('c', 2)]");
  EXPECT_EQ(Render("{{ {'b': 1, 'A': 3, 'c': 2} | dictsort(by='value', reverse=true) }}"),
            "[('A', 3), ('c', 2), ('b', 1)]");
  EXPECT_EQ(Render("{% for k, v in {'y': 1, 'x': 2} | dictsort %}{{ k }}={{ v }};{% endfor %}"),
            "x=2;y=1;");
  EXPECT_EQ(Render("{{ {'a': 1} | dictsort(by='nope') }}"),
            "ERROR: chat template: line 1: You can only sort by either 'key' or 'value'");
}

TEST(JinjaTest, SetInALoopLastsOneIterationAndANamespaceCarriesOut) {
  EXPECT_EQ(Render("{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = 2 %}{% endfor %}{{ x }}"),
            "111");
  EXPECT_EQ(Render("{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}"
                   "{% endfor %}{{ ns.n }}"),
            "6");
}

TEST(JinjaTest, MacrosTakeDefaultsAndKeywords) {
  EXPECT_EQ(Render("{% macro m(a, b='B') %}{{ a }}{{ b }}{% endmacro %}{{ m(1) }}{{ m(1, b=2) }}"),
            "1B12");
}

TEST(JinjaTest, MissingKeysAreUndefinedButAttributesOfUndefinedAreErrors) {
  EXPECT_EQ(Render("[{{ messages[0].nothing }}][{{ messages[5] }}]"), "[][]");
  EXPECT_EQ(Render("{{ messages[0].nothing.deeper }}"),
            "ERROR: chat template: line 1: 'dict object' has no attribute 'nothing'");
  EXPECT_EQ(Render("{{ nothing + 1 }}"), "ERROR: chat template: line 1: 'nothing' is undefined");
}

TEST(JinjaTest, RaiseExceptionGivesItsMessage) {
  EXPECT_EQ(Render("\n{{ raise_exception('roles must alternate') }}"),
            "ERROR: chat template: line 2: roles must alternate");
}

TEST(JinjaTest, TypeErrorsAndUnknownMethodsAreErrors) {
  EXPECT_EQ(Render("{{ 'a' + 1 }}"),
            "ERROR: chat template: line 1: unsupported operand types for +: 'str object' and "
            "'int object'");
  EXPECT_EQ(Render("{{ 'a'.nomethod() }}"),
            "ERROR: chat template: line 1: 'str object' has no attribute 'nomethod'");
  EXPECT_EQ(
      Render("{% set l = [] %}{{ l.append(1) }}"),
      "ERROR: chat template: line 1: access to attribute 'append' of 'list object' is unsafe");
}

TEST(JinjaTest, CompileErrorsNameTheLineAndConstruct) {
  EXPECT_EQ(Render("ok\n{% extends 'base' %}"),
            "COMPILE: chat template: line 2: unsupported statement 'extends'");
  EXPECT_EQ(Render("{{ x | nosuchfilter }}"),
            "COMPILE: chat template: line 1: unsupported filter 'nosuchfilter'");
  EXPECT_EQ(Render("{% if x is nosuchtest %}{% endif %}"),
            "COMPILE: chat template: line 1: unsupported test 'nosuchtest'");
  EXPECT_EQ(Render("{% if true %}open"),
            "COMPILE: chat template: line 1: unclosed block: expected 'endif'");
  EXPECT_EQ(Render("{{ 1 + }}"),
            "COMPILE: chat template: line 1: expected an expression, got '}}'");
  EXPECT_EQ(Render("{% break %}"), "COMPILE: chat template: line 1: 'break' outside a loop");
  EXPECT_EQ(Render("{{ " + std::string(1000, '(') + "1" + std::string(1000, ')') + " }}"),
            "COMPILE: chat template: line 1: expression nested too deeply");
}

TEST(JinjaTest, RenderLimitsStopHostileTemplates) {
  RenderLimits small;
  small.max_output_bytes = 1000;
  small.max_steps = 10000;
  EXPECT_NE(Render("{% for i in range(100000) %}x{% endfor %}", small).find("render limit"),
            std::string::npos);
  EXPECT_NE(Render("{{ 'a' * 100000 }}", small).find("result above 1000 bytes"), std::string::npos);
  // Empty sequences repeated at once, not once per (empty) copy.
  EXPECT_EQ(Render("{{ '' * 9000000000000000000 }}|{{ ([] * 9000000000000000000)|length }}"), "|0");
  // A step that carries the index past int64 ends the range or slice.
  EXPECT_EQ(Render("{{ 'abc'[1::9223372036854775807] }}|{{ [1, 2, 3][2::9223372036854775807] }}"),
            "b|[3]");
  EXPECT_EQ(Render("{{ range(0, 9223372036854775807, 4611686018427387904)|list }}"),
            "[0, 4611686018427387904]");
  EXPECT_NE(Render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").find("render limit"),
            std::string::npos);
  EXPECT_NE(Render("{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
                   "{% set ns.s = ns.s + ns.s %}{% endfor %}",
                   small)
                .find("too large"),
            std::string::npos);
}

TEST(ChatTemplateTest, ChatMlRendersTheConversation) {
  std::shared_ptr<const ChatTemplate> t = ChatTemplate::ChatMl("<s>", "</s>");
  const std::vector<ChatMessage> messages = {{"system", "S"}, {"user", "U"}};
  Result<std::string> out = t->Apply(messages, true);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(
      *out,
      "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateTest, BosEosAndExtraVariablesReachTheTemplate) {
  Result<std::shared_ptr<const ChatTemplate>> t = ChatTemplate::Compile(
      "{{ bos_token }}{{ greeting }}{{ tools is none }}{{ eos_token }}", "<s>", "</s>");
  ASSERT_TRUE(t.ok()) << t.status();
  Result<JsonValue> extra = ParseJson(R"({"greeting": "hello"})");
  ASSERT_TRUE(extra.ok());
  Result<std::string> out = (*t)->Apply({}, false, &*extra);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "<s>helloTrue</s>");
}

}  // namespace
}  // namespace relayout::jinja
